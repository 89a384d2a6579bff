//! Plain-text tables and the number formats they hold.

use std::fmt;
use std::time::Duration;

/// A table of text cells: the first column left-aligned, the others
/// right-aligned, columns separated by two spaces, a rule under the header.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.header.len();
        let cell = |row: &[String], i: usize| row.get(i).map_or(0, |c| c.chars().count());
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i))
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, row: &[String]| -> fmt::Result {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let c = row.get(i).map_or("", String::as_str);
                if i == 0 {
                    text.push_str(&format!("{c:<width$}"));
                } else {
                    text.push_str(&format!("  {c:>width$}"));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, &self.header)?;
        let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
        writeln!(f, "{}", "-".repeat(total))?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// `n` with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).unwrap_or_default())
        .collect();
    groups.join(",")
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration with a unit that suits it: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{:.0} µs", secs * 1e6)
    }
}

/// Operations per second, or `-` when nothing was timed.
pub fn rate(ops: u64, d: Duration) -> String {
    let secs = d.as_secs_f64();
    if ops == 0 || secs == 0.0 {
        "-".to_string()
    } else {
        count((ops as f64 / secs).round() as u64)
    }
}

/// `part / whole` as `0.42`, or `-` when `whole` is zero.
pub fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", part as f64 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(rate(10, Duration::from_secs(2)), "5");
        assert_eq!(ratio(1, 4), "0.25");
        assert_eq!(ratio(1, 0), "-");
    }

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["name", "n"]);
        t.row(vec!["a".into(), "1,000".into()]);
        t.row(vec!["longer".into(), "2".into()]);
        assert_eq!(
            t.to_string(),
            "name        n\n-------------\na       1,000\nlonger      2\n"
        );
    }
}
