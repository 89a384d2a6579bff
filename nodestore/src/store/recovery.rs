//! Recovery: what happens when a store opens, after a clean close or a
//! crash alike.
//!
//! 1. Sync every file (S10), unless read-only.
//! 2. Read the newest valid superblock slot; a damaged other slot is
//!    reported as a warning (the commit it held, if any, is gone).
//! 3. No superblock: create a store, but only where no committed data can
//!    be (no segment holds anything but key check records); otherwise the
//!    superblock was lost and the store is damaged, and nothing is touched.
//! 4. Check the parameters and the key, load the node table and check it
//!    against the superblock (every id below the next id, every location
//!    below the next segment), read the catalog.
//! 5. Scan the commit log after the checkpoint: every record in order,
//!    up to the first that is missing, torn or foreign; damage before that
//!    point is an error, never a silent skip of committed data
//!    ([`scan_log`]). The records of committed groups are kept for replay.
//! 6. Remove the segments the committed state does not refer to (S7, S9)
//!    and the log files before the checkpoint's, unless read-only.

use super::log::{create_log_file, LogStart};
use super::{StoreConfig, KEY_CHECK, META_CONTEXT};
use crate::{
    read_blob, read_newest_with_fault, scan_segment, Backend, BlobFault, BlobKind, Damage, Digest,
    Directory, FileId, FilterError, FormatError, Location, LogId, NodeTable, Parameters,
    RecordHeader, SegmentId, SegmentWriter, StoreError, Superblock, LOG_HEADER_LEN, SLOT_LEN,
};
use larix_filters::{Context, Pipeline};

/// The committed state an open found.
pub(super) struct Recovered {
    pub(super) superblock: Superblock,
    pub(super) table: NodeTable,
    pub(super) directory: Directory,
    pub(super) catalog: Vec<u8>,
    /// What the open noticed and worked around, one line each.
    pub(super) warnings: Vec<String>,
    /// The log records to replay, in order.
    pub(super) replay: Vec<ReplayRecord>,
    /// Where new log records go.
    pub(super) log: LogStart,
}

/// A log record to replay: where it lies and its header.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplayRecord {
    pub(super) file: LogId,
    pub(super) offset: u64,
    pub(super) header: RecordHeader,
}

/// Opens the committed state of the store on `backend` (creating a store
/// if there is none and the open may write).
///
/// # Errors
/// As [`NodeStore::open`](super::NodeStore::open).
pub(super) fn recover(
    backend: &dyn Backend,
    pipeline: &Pipeline,
    config: &StoreConfig,
) -> Result<Recovered, StoreError> {
    if !config.read_only {
        make_durable(backend)?;
    }
    let mut warnings = Vec::new();
    // A store this open creates has had no other writer to fence.
    let mut created = false;
    let superblock = match read_newest_with_fault(backend, &super::seal(pipeline)) {
        Ok((sb, other)) => {
            if let Some(fault) = other {
                warnings.push(format!(
                    "superblock slot {} is damaged ({fault}): opened {} from the other slot; \
                     the commit after it, if there was one, is lost",
                    sb.generation.next().slot(),
                    sb.generation
                ));
            }
            sb
        }
        Err(FormatError::NoSuperblock { file }) if !config.read_only => {
            ensure_nothing_committed(backend, &file)?;
            created = true;
            create(backend, pipeline, config)?
        }
        Err(FormatError::Unauthenticated { .. }) => return Err(StoreError::WrongKey),
        Err(e) => return Err(e.into()),
    };
    if superblock.parameters.as_str() != config.parameters {
        return Err(StoreError::ParametersMismatch {
            stored: superblock.parameters.as_str().to_string(),
            given: config.parameters.clone(),
        });
    }
    check_key(backend, pipeline, &superblock, &mut warnings)?;
    let (table, directory) = load_table(backend, &superblock)?;
    check_table(&table, &superblock)?;
    let catalog = load_catalog(backend, pipeline, &superblock)?;
    if !config.read_only && !created && backend.appends_only() {
        fence_logs(backend, &superblock)?;
    }
    let (replay, log) = scan_log(backend, &superblock)?;
    if !config.read_only {
        remove_dead_segments(backend, &table, &directory, &superblock)?;
        remove_old_logs(backend, superblock.log_file)?;
        create_log_file(backend, log.file)?;
    }
    Ok(Recovered {
        superblock,
        table,
        directory,
        catalog,
        warnings,
        replay,
        log,
    })
}

/// Refuses to create a store where segments hold anything but key check
/// records (S13): a store whose superblock was lost (or blanked) still has every
/// committed node in its segments, and creating a store would remove them.
/// A lone key check record is what a creation interrupted before its
/// superblock leaves.
fn ensure_nothing_committed(backend: &dyn Backend, superblock: &str) -> Result<(), StoreError> {
    let segments = backend.segments().map_err(directory_io)?;
    let mut holding = 0;
    for &seg in &segments {
        let records = scan_segment(backend, seg)?;
        // A torn tail after the records is no committed data.
        if seg != SegmentId::FIRST || records.iter().any(|(h, _)| h.kind != BlobKind::KeyCheck) {
            holding += 1;
        }
    }
    if holding > 0 {
        return Err(FormatError::SuperblockLost {
            file: superblock.to_string(),
            segments: segments.len(),
        }
        .into());
    }
    Ok(())
}

/// Creates a new store: the key check blob in segment 1, synced, then
/// generation 0 of the superblock, written whole (a crash leaves no
/// superblock or all of it).
fn create(
    backend: &dyn Backend,
    pipeline: &Pipeline,
    config: &StoreConfig,
) -> Result<Superblock, StoreError> {
    // Segments left by a creation that crashed before its superblock.
    remove_segments(backend, |_| true)?;
    let mut sb = Superblock::new(Parameters::new(config.parameters.clone())?);
    sb.log_salt = random_salt();
    let mut writer = SegmentWriter::new(SegmentId::FIRST, 0, config.max_segment_bytes);
    let body = pipeline.encode(&Context::new(META_CONTEXT), KEY_CHECK)?;
    sb.key_check = Some(writer.append(backend, BlobKind::KeyCheck, 0, &body)?);
    sb.next_segment = SegmentId::FIRST.next().expect("segment 2 exists");
    writer.sync(backend)?;
    let file = FileId::Superblock;
    let slot: [u8; SLOT_LEN] = sb.encode_sealed(&super::seal(pipeline));
    backend
        .create_whole(file, &slot)
        .map_err(|e| FormatError::io(backend.name(file), None, e))?;
    backend.sync_dir().map_err(directory_io)?;
    Ok(sb)
}

/// A number no other store is likely to have drawn: the hash, under the
/// standard library's randomly keyed hasher, of the time, the process and
/// an address.
fn random_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.write_usize(&h as *const _ as usize);
    h.finish()
}

/// Checks that the key check blob unfilters to its known plaintext: a wrong
/// encryption key fails here, before any node is read. A key check blob
/// that cannot be read at all (its segment lost) is only a warning: the
/// first node read then checks the key.
fn check_key(
    backend: &dyn Backend,
    pipeline: &Pipeline,
    sb: &Superblock,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let Some(loc) = sb.key_check else {
        return Ok(());
    };
    let body = match read_blob(backend, loc, BlobKind::KeyCheck, 0) {
        Ok(body) => body,
        Err(e) => {
            warnings.push(format!(
                "the key check blob cannot be read ({e}); the key is checked by the first node read"
            ));
            return Ok(());
        }
    };
    match pipeline.decode(&Context::new(META_CONTEXT), &body) {
        Ok(plain) if plain == KEY_CHECK => Ok(()),
        // A command that could not run says nothing about the blob.
        Err(
            e @ (FilterError::CommandSpawn { .. }
            | FilterError::CommandIo { .. }
            | FilterError::CommandTimeout { .. }),
        ) => Err(e.into()),
        // Only a key can make an intact blob fail to decode; without
        // encryption the blob itself is damaged.
        _ if pipeline.has_filter("encrypt") => Err(StoreError::WrongKey),
        result => Err(StoreError::MetadataDamaged {
            what: "key check blob",
            cause: match result {
                Ok(_) => Damage::WrongBytes,
                Err(e) => e.into(),
            },
        }),
    }
}

/// Loads the node table the superblock points at.
fn load_table(
    backend: &dyn Backend,
    sb: &Superblock,
) -> Result<(NodeTable, Directory), StoreError> {
    let mut table = NodeTable::new();
    let Some(loc) = sb.table_directory else {
        return Ok((table, Directory::new()));
    };
    let body = read_blob(backend, loc, BlobKind::TableDirectory, 0)?;
    pinned(
        backend,
        &body,
        sb.table_directory_digest,
        loc,
        BlobKind::TableDirectory,
        0,
    )?;
    let directory = Directory::decode(&body)?;
    for (idx, loc, digest) in directory.iter_pinned() {
        if loc.segment >= sb.next_segment {
            return Err(FormatError::DirectoryDamaged {
                reason: format!(
                    "chunk {idx} lies in {}, at or past the superblock's next segment",
                    loc.segment
                ),
            }
            .into());
        }
        let bytes = read_blob(backend, loc, BlobKind::TableChunk, idx)?;
        pinned(backend, &bytes, digest, loc, BlobKind::TableChunk, idx)?;
        table.load_chunk(idx, &bytes)?;
    }
    Ok((table, directory))
}

/// Checks the loaded table against the superblock (S11): every live id is
/// below the next id to allocate (S1: otherwise a new node would reuse a
/// live id), and every location lies below the next segment (S7).
fn check_table(table: &NodeTable, sb: &Superblock) -> Result<(), StoreError> {
    if let Some(last) = table.ids().last() {
        if last >= sb.next_node {
            return Err(FormatError::TableInconsistent {
                reason: format!(
                    "{last} is live but the superblock's next node id is {}",
                    sb.next_node.0
                ),
            }
            .into());
        }
    }
    if let Some(seg) = table.live_by_segment().map(|(s, _)| s).max() {
        if seg >= sb.next_segment {
            return Err(FormatError::TableInconsistent {
                reason: format!("a node lies in {seg}, at or past the superblock's next segment"),
            }
            .into());
        }
    }
    Ok(())
}

/// On a medium without locks (object storage), seals every log file a
/// writer that opened the store before this open may still append to:
/// those from the checkpoint's on, and the one after the last (a writer
/// whose checkpoint has just started it, before any record). Its next
/// commit then fails, and the records it made durable before are the
/// ones the scan after this finds (see `docs/design.md`, "Fencing
/// writers").
///
/// # Errors
/// An I/O failure.
fn fence_logs(backend: &dyn Backend, sb: &Superblock) -> Result<(), StoreError> {
    let io = |file: FileId| move |e| FormatError::io(backend.name(file), None, e);
    let logs = backend.logs().map_err(io(FileId::Superblock))?;
    let last = logs
        .last()
        .copied()
        .map_or(sb.log_file, |l| l.max(sb.log_file));
    let mut id = sb.log_file;
    loop {
        backend.seal(FileId::Log(id)).map_err(io(FileId::Log(id)))?;
        if id > last {
            return Ok(());
        }
        id = id
            .next()
            .ok_or(FormatError::SegmentIdsExhausted { last: id.0 })?;
    }
}

/// Reads the commit log after the checkpoint `sb` records: the records of
/// committed groups (L2), in order, and where new records go.
///
/// # Errors
/// [`FormatError::LogDamaged`] if a record that was durable cannot be read
/// (damage before the log's tail); an I/O failure.
fn scan_log(
    backend: &dyn Backend,
    sb: &Superblock,
) -> Result<(Vec<ReplayRecord>, LogStart), StoreError> {
    let io = |file: FileId| move |e| FormatError::io(backend.name(file), None, e);
    let logs = backend.logs().map_err(io(FileId::Superblock))?;
    let mut expected = sb.log_start;
    let mut found = Vec::new();
    for &id in logs.iter().filter(|&&l| l >= sb.log_file) {
        let file = FileId::Log(id);
        let len = backend.len(file).map_err(io(file))?;
        let mut offset = 0;
        while let Some(header) = read_record(backend, file, offset, len, sb.log_salt, expected)? {
            found.push(ReplayRecord {
                file: id,
                offset,
                header,
            });
            expected += 1;
            offset += header.record_len();
        }
        if offset < len {
            refuse_durable_after(backend, file, offset, len, sb.log_salt, expected)?;
        }
    }
    let file = logs
        .last()
        .and_then(|l| l.next())
        .map_or(sb.log_file, |n| n.max(sb.log_file));
    // What a checkpoint would drop: the records found and the files of
    // earlier sessions (even empty ones), so that a clean close prunes them.
    let stale_files = logs.iter().filter(|&&l| l > sb.log_file).count() as u64;
    let record_bytes: u64 = found.iter().map(|r| r.header.record_len()).sum();
    let start = LogStart {
        file,
        next_lsn: expected,
        behind: record_bytes + stale_files,
    };
    Ok((committed_groups(found), start))
}

/// The record at `offset` of `file` if it is intact, of this store and the
/// one expected next; `None` at the log's end (or a torn or stale record).
fn read_record(
    backend: &dyn Backend,
    file: FileId,
    offset: u64,
    len: u64,
    salt: u64,
    expected: u64,
) -> Result<Option<RecordHeader>, StoreError> {
    if len.saturating_sub(offset) < LOG_HEADER_LEN as u64 {
        return Ok(None);
    }
    let io = |e| FormatError::io(backend.name(file), Some(offset), e);
    let mut h = [0u8; LOG_HEADER_LEN];
    backend.read_at(file, offset, &mut h).map_err(io)?;
    let Ok(header) = RecordHeader::decode(&h) else {
        return Ok(None);
    };
    if header.salt != salt || header.lsn != expected || len - offset < header.record_len() {
        return Ok(None);
    }
    let mut body = vec![0u8; header.len as usize];
    backend
        .read_at(file, offset + LOG_HEADER_LEN as u64, &mut body)
        .map_err(io)?;
    Ok((crc32c::crc32c(&body) == header.body_crc).then_some(header))
}

/// Fails if a record of this store that was durable (its `durable` at or
/// past `expected`, the record that could not be read) lies past `from` in
/// `file`: the log was damaged before its tail, and replaying up to the
/// damage would silently drop committed data.
fn refuse_durable_after(
    backend: &dyn Backend,
    file: FileId,
    from: u64,
    len: u64,
    salt: u64,
    expected: u64,
) -> Result<(), StoreError> {
    const STEP: u64 = 1 << 20;
    let magic = crate::LOG_MAGIC.to_le_bytes();
    let mut at = from;
    while at + (LOG_HEADER_LEN as u64) <= len {
        let n = (len - at).min(STEP + LOG_HEADER_LEN as u64) as usize;
        let mut buf = vec![0u8; n];
        backend
            .read_at(file, at, &mut buf)
            .map_err(|e| FormatError::io(backend.name(file), Some(at), e))?;
        for i in 0..n.saturating_sub(LOG_HEADER_LEN - 1) {
            if buf[i..i + 4] != magic {
                continue;
            }
            let Ok(h) = RecordHeader::decode(&buf[i..i + LOG_HEADER_LEN]) else {
                continue;
            };
            if h.salt == salt && h.lsn >= expected && h.durable >= expected {
                return Err(FormatError::LogDamaged {
                    file: backend.name(file),
                    lsn: expected,
                }
                .into());
            }
        }
        at += STEP;
    }
    Ok(())
}

/// The records of the groups that committed, in order (L2).
pub(super) fn committed_groups(found: Vec<ReplayRecord>) -> Vec<ReplayRecord> {
    let mut out = Vec::with_capacity(found.len());
    let mut group: Vec<ReplayRecord> = Vec::new();
    for r in found {
        if group
            .first()
            .is_some_and(|g| g.header.group != r.header.group)
        {
            group.clear();
        }
        let commit = r.header.commit;
        group.push(r);
        if commit {
            out.append(&mut group);
        }
    }
    out
}

/// Removes the log files before `first`: the checkpoint holds all they
/// recorded.
pub(super) fn remove_old_logs(backend: &dyn Backend, first: LogId) -> Result<(), StoreError> {
    let logs = backend.logs().map_err(directory_io)?;
    remove_files(
        backend,
        logs.into_iter().filter(|&l| l < first).map(FileId::Log),
    )
}

/// Reads and unfilters the catalog the superblock points at (empty if
/// none).
fn load_catalog(
    backend: &dyn Backend,
    pipeline: &Pipeline,
    sb: &Superblock,
) -> Result<Vec<u8>, StoreError> {
    let Some(loc) = sb.catalog else {
        return Ok(Vec::new());
    };
    let body = read_blob(backend, loc, BlobKind::Catalog, 0)?;
    pinned(backend, &body, sb.catalog_digest, loc, BlobKind::Catalog, 0)?;
    pipeline
        .decode(&Context::new(META_CONTEXT), &body)
        .map_err(|e| StoreError::MetadataDamaged {
            what: "catalog",
            cause: e.into(),
        })
}

/// Fails unless `body`, the blob of `kind` and `id` read from `loc`, has
/// the digest that pins it.
fn pinned(
    backend: &dyn Backend,
    body: &[u8],
    digest: Digest,
    loc: Location,
    kind: BlobKind,
    id: u64,
) -> Result<(), StoreError> {
    if Digest::of(body) == digest {
        return Ok(());
    }
    Err(FormatError::Blob {
        file: backend.name(FileId::Segment(loc.segment)),
        offset: loc.offset,
        kind,
        id,
        fault: BlobFault::DigestMismatch,
    }
    .into())
}

/// Syncs every file of the store before it is read, so that what an open
/// shows is durable (S10): a superblock written by a commit that failed
/// before its sync must not be shown and then lost by a crash.
fn make_durable(backend: &dyn Backend) -> Result<(), StoreError> {
    let segments = backend.segments().map_err(directory_io)?;
    let logs = backend.logs().map_err(directory_io)?;
    let files = segments
        .into_iter()
        .map(FileId::Segment)
        .chain(logs.into_iter().map(FileId::Log))
        .chain([FileId::Superblock]);
    for file in files {
        match backend.sync(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FormatError::io(backend.name(file), None, e).into()),
        }
    }
    backend.sync_dir().map_err(|e| directory_io(e).into())
}

/// Removes the segment files the committed state does not refer to: those
/// at or past `sb.next_segment` (written after the last durable commit)
/// and those below it with nothing live (left by a compaction whose
/// removal a crash interrupted).
fn remove_dead_segments(
    backend: &dyn Backend,
    table: &NodeTable,
    directory: &Directory,
    sb: &Superblock,
) -> Result<(), StoreError> {
    let live = super::compact::live_by_segment(table, directory, sb, sb.key_check);
    remove_segments(backend, |s| s >= sb.next_segment || !live.contains_key(&s))
}

/// Removes the segment files `doomed` picks, then syncs the directory if
/// any went.
pub(super) fn remove_segments(
    backend: &dyn Backend,
    doomed: impl Fn(SegmentId) -> bool,
) -> Result<(), StoreError> {
    let segments = backend.segments().map_err(directory_io)?;
    remove_files(
        backend,
        segments
            .into_iter()
            .filter(|&s| doomed(s))
            .map(FileId::Segment),
    )
}

/// Removes `files`, then syncs the directory if any went, so that the
/// removals are durable before anything relies on them.
fn remove_files(
    backend: &dyn Backend,
    files: impl IntoIterator<Item = FileId>,
) -> Result<(), StoreError> {
    let mut removed = false;
    for file in files {
        backend
            .remove(file)
            .map_err(|e| FormatError::io(backend.name(file), None, e))?;
        removed = true;
    }
    if removed {
        backend.sync_dir().map_err(directory_io)?;
    }
    Ok(())
}

/// A failure to list or sync the store directory.
fn directory_io(e: std::io::Error) -> FormatError {
    FormatError::io("the store directory".into(), None, e)
}
