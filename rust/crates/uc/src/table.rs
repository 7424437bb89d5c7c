//! Aligned text tables, as `uc` prints them: a header row, then columns
//! padded to their widest cell, two spaces apart.

use std::fmt::Write;

/// The rows, the first being the header, each line's trailing blanks cut.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// A header row from its titles.
pub fn header(titles: &[&str]) -> Vec<String> {
    titles.iter().map(|t| (*t).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            header(&["A", "LONG HEADER", "C"]),
            vec!["wide cell".into(), "x".into(), String::new()],
        ];
        assert_eq!(render(&rows), "A          LONG HEADER  C\nwide cell  x\n");
    }
}
