//! The command line, as clap parses it: one struct per subcommand, and the
//! option groups several share (`--db`, `--tree`, the filter flags).
//!
//! Every subcommand's help ends with an example; `tests/cli.rs` checks it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// Larix: copy-on-write B-trees with O(1) clones, on disk.
#[derive(Debug, Parser)]
#[command(
    name = "larix",
    version,
    arg_required_else_help = true,
    after_help = "Example:\n  larix demo                          # walk /usr, snapshot, change, diff\n  larix put --db data greeting hello  # then: larix get --db data greeting"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a directory tree, snapshot it, change it and print the difference.
    #[command(
        after_help = "Example:\n  larix demo --path /usr/share --limit 50000 --db /tmp/demo"
    )]
    Demo(DemoArgs),
    /// Run the standard workload (random 24-byte keys, 150-byte values).
    #[command(after_help = "Example:\n  larix bench --n 200000 --zstd 1")]
    Bench(BenchArgs),
    /// Insert or replace one entry (creates the store and the tree if missing).
    #[command(
        after_help = "Examples:\n  larix put --db data --tree users alice 'Alice Liddell'\n  larix put --db data --tree files disk.img --file disk.img"
    )]
    Put(PutArgs),
    /// Print the value of one key (or write it to a file).
    #[command(
        after_help = "Examples:\n  larix get --db data --tree users alice\n  larix get --db data --tree files disk.img --output copy.img"
    )]
    Get(GetArgs),
    /// Remove one key.
    #[command(after_help = "Example:\n  larix del --db data --tree users alice")]
    Del(KeyArgs),
    /// Print the entries of a key range, one per line: key, tab, value.
    #[command(after_help = "Example:\n  larix scan --db data --prefix user: --limit 10 --reverse")]
    Scan(ScanArgs),
    /// Print the number of entries in a key range.
    #[command(after_help = "Example:\n  larix count --db data --from a --to m")]
    Count(RangeQuery),
    /// List the trees, one name per line, escaped.
    #[command(
        after_help = "Names are escaped so that each is one line: a newline prints as \\n, a tab\nas \\t, a carriage return as \\r, a backslash as \\\\, other control characters\nas \\u{HEX}.\n\nExample:\n  larix trees --db data"
    )]
    Trees(StoreArgs),
    /// Make tree DST an O(1) snapshot of tree SRC.
    #[command(after_help = "Example:\n  larix clone --db data main main@monday")]
    Clone(CloneArgs),
    /// Print what turns tree OLD into tree NEW, in key order: `+ KEY TAB
    /// VALUE` for a key only in NEW, `- KEY TAB VALUE` for one only in OLD,
    /// `~ KEY TAB OLD_VALUE TAB NEW_VALUE` for a changed value.
    #[command(
        after_help = "Only what the trees do not share is read: the diff of a tree and its clone\ncosts about two node paths per changed key.\n\nExample:\n  larix diff --db data main@monday main\n  larix diff --db data --count main@monday main"
    )]
    Diff(DiffArgs),
    /// Remove a tree.
    #[command(after_help = "Example:\n  larix drop --db data main@monday")]
    Drop(DropArgs),
    /// Load entries from a file (or `-` for standard input) into a tree.
    #[command(
        after_help = "Formats:\n  tsv    one entry a line: hex key, tab, hex value\n  jsonl  one object a line: {\"key\": TEXT, \"value\": TEXT}, or\n         \"key_hex\" / \"value_hex\" for bytes that are not UTF-8;\n         a field named twice is an error\n\nExample:\n  larix import --db data --tree copy --format jsonl dump.jsonl"
    )]
    Import(ImportArgs),
    /// Write a tree's entries to a file or standard output.
    #[command(after_help = "Example:\n  larix export --db data --format jsonl dump.jsonl")]
    Export(ExportArgs),
    /// Check every tree's structure and refcounts; exit status 3 on a problem.
    #[command(after_help = "Example:\n  larix check --db data || echo damaged")]
    Check(StoreArgs),
    /// Print the store's counters and the size of each tree.
    #[command(after_help = "Example:\n  larix stats --db data")]
    Stats(StoreArgs),
    /// Print a tree's shape: depth, nodes per level, fill.
    #[command(after_help = "Example:\n  larix dump --db data --tree main")]
    Dump(TreeArgs),
    /// Rewrite sparse segment files and print the space before and after.
    #[command(after_help = "Example:\n  larix compact --db data")]
    Compact(StoreArgs),
}

/// Where the store is, and the key to read it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store's directory, or the URL of a store in an object store:
    /// s3://BUCKET/PREFIX (configured by --storage-option and the AWS_*
    /// environment variables) or file:///DIR.
    #[arg(long, value_name = "DIR|URL")]
    pub db: PathBuf,
    /// A setting of the object store an s3:// URL names, KEY=VALUE, such as
    /// aws_endpoint=http://127.0.0.1:9000 or aws_allow_http=true (the
    /// object_store crate's S3 keys); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub storage_option: Vec<String>,
    /// The encryption key: 32 raw bytes, or 64 hex characters (refused by
    /// a store that is not encrypted).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The command filter of a store made with one: the ENCODE and DECODE
    /// commands, each an absolute program path and its arguments separated
    /// by spaces. Larix never runs a command read from a store: these must
    /// be the very commands the store records. A new store gets this filter
    /// after zstd.
    #[arg(long, num_args = 2, value_names = ["ENCODE", "DECODE"])]
    pub filter_command: Option<Vec<String>>,
}

impl StoreArgs {
    /// The store's URL, if `--db` names one rather than a directory.
    pub fn url(&self) -> Option<&str> {
        self.db
            .to_str()
            .filter(|d| d.starts_with("s3://") || d.starts_with("file://"))
    }

    /// Options carrying the `--storage-option` settings.
    ///
    /// # Errors
    /// A setting without `=`.
    pub fn storage(&self) -> Result<larix::Options, String> {
        let mut options = larix::Options::default();
        for setting in &self.storage_option {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("--storage-option {setting:?} is not KEY=VALUE"))?;
            options = options.storage_option(key, value);
        }
        Ok(options)
    }

    /// The command filter `--filter-command` names, if given.
    pub fn command(&self) -> Option<larix::FilterSpec> {
        let [encode, decode] = self.filter_command.as_deref()? else {
            return None;
        };
        let encode: Vec<&str> = encode.split_whitespace().collect();
        let decode: Vec<&str> = decode.split_whitespace().collect();
        Some(larix::FilterSpec::command(&encode, &decode))
    }
}

/// A store and one of its trees.
#[derive(Debug, Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The tree to act on.
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub tree: String,
}

/// How a new store filters its nodes. An existing store keeps the filters
/// it was created with; giving one of these for it is an error.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Compress nodes with zstd at LEVEL (1-22) [default: 1].
    #[arg(
        long,
        value_name = "LEVEL",
        conflicts_with = "no_zstd",
        value_parser = clap::value_parser!(i32).range(1..=22)
    )]
    pub zstd: Option<i32>,
    /// Do not compress nodes.
    #[arg(long)]
    pub no_zstd: bool,
    /// Append a crc32c checksum to every node (the default).
    #[arg(long, conflicts_with = "no_checksum")]
    pub checksum: bool,
    /// Do not checksum nodes.
    #[arg(long)]
    pub no_checksum: bool,
    /// The largest node, in bytes (256 to 1048576) [default: 4096].
    #[arg(long, value_name = "BYTES")]
    pub node_size: Option<usize>,
}

impl FilterArgs {
    /// True if any flag was given, so it matters whether the store is new.
    pub fn any(&self) -> bool {
        self.zstd.is_some()
            || self.no_zstd
            || self.checksum
            || self.no_checksum
            || self.node_size.is_some()
    }
}

/// How keys and values are written on the command line and printed.
#[derive(Debug, Args)]
pub struct Encoding {
    /// Keys and values are hex on input and output (default: UTF-8 text).
    #[arg(long)]
    pub hex: bool,
}

/// `larix put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub target: TreeArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub encoding: Encoding,
    /// The key.
    pub key: OsString,
    /// The value.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub value: Option<OsString>,
    /// Read the value from this file instead (up to 1 GiB, streamed: a
    /// large value is never held in memory whole).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// `larix get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Write the value, as it is, to this file (created or replaced)
    /// instead of printing it; streamed chunk by chunk.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// `larix get` and `larix del`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub target: TreeArgs,
    #[command(flatten)]
    pub encoding: Encoding,
    /// The key.
    pub key: OsString,
}

/// A key range within one tree: `--prefix`, `--from`, `--to`.
#[derive(Debug, Args)]
pub struct RangeQuery {
    #[command(flatten)]
    pub target: TreeArgs,
    #[command(flatten)]
    pub encoding: Encoding,
    /// Only keys that start with PREFIX.
    #[arg(long)]
    pub prefix: Option<OsString>,
    /// Only keys at or after KEY.
    #[arg(long, value_name = "KEY")]
    pub from: Option<OsString>,
    /// Only keys before KEY.
    #[arg(long, value_name = "KEY")]
    pub to: Option<OsString>,
}

/// `larix scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub range: RangeQuery,
    /// Print at most N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Largest key first.
    #[arg(long)]
    pub reverse: bool,
}

/// `larix clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The tree to clone.
    pub src: String,
    /// The name of the new tree.
    pub dst: String,
}

/// `larix diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub encoding: Encoding,
    /// Print only the numbers of keys added, removed and changed.
    #[arg(long)]
    pub count: bool,
    /// The tree to compare from.
    pub old: String,
    /// The tree to compare to.
    pub new: String,
}

/// `larix drop`.
#[derive(Debug, Args)]
pub struct DropArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The tree to remove.
    pub tree: String,
}

/// The file formats of `import` and `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Hex key, tab, hex value; one entry a line.
    Tsv,
    /// One JSON object a line.
    Jsonl,
}

/// `larix import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub target: TreeArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The file's format.
    #[arg(long, value_enum, default_value_t = Format::Tsv)]
    pub format: Format,
    /// The file to read; `-` reads standard input.
    pub file: PathBuf,
}

/// `larix export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: TreeArgs,
    /// The format to write.
    #[arg(long, value_enum, default_value_t = Format::Tsv)]
    pub format: Format,
    /// The file to write (default: standard output); a path inside the
    /// store's directory is refused.
    pub file: Option<PathBuf>,
}

/// `larix demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo store's directory. A store an earlier demo made there
    /// (marked by the file `larix-demo`) is replaced: its files are
    /// removed, anything else in the directory stays. Any other store is
    /// refused.
    #[arg(long, value_name = "DIR", default_value = "larix-demo")]
    pub db: PathBuf,
    /// Keep the store in memory instead (no disk figures).
    #[arg(long, conflicts_with = "db")]
    pub in_memory: bool,
    /// The directory tree to walk.
    #[arg(long, default_value = "/usr")]
    pub path: PathBuf,
    /// Stop the walk after N entries.
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub limit: u64,
    /// The encryption key for the demo store.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
}

/// `larix bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Entries of the bulk load; the other phases scale with it.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub n: u64,
    /// A directory that must not exist yet; it is removed afterwards.
    #[arg(long, value_name = "DIR", default_value = "larix-bench")]
    pub db: PathBuf,
    /// Run on an in-memory store instead.
    #[arg(long, conflicts_with = "db")]
    pub in_memory: bool,
    /// Keep the store's directory afterwards.
    #[arg(long, conflicts_with = "in_memory")]
    pub keep: bool,
    /// Store nodes without any filter.
    #[arg(long, conflicts_with_all = ["zstd", "checksum", "key_file"])]
    pub no_filters: bool,
    /// Encrypt nodes with the key in FILE.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
}
