//! Plain-text tables laid out as istioctl's (Go's `text/tabwriter` with space padding):
//! every cell but a line's last is padded to its column's width plus a gap; the last cell
//! is written as is, so lines carry no trailing spaces beyond empty last cells' gaps.

/// A table with a header row.
#[derive(Clone, Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
    gap: usize,
}

impl Table {
    /// A table with these column titles and `gap` spaces between columns.
    pub fn new(header: &[&str], gap: usize) -> Table {
        Table {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
            gap,
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Rows below the header.
    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in &self.rows {
            // The last cell of a row is not part of a column.
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] + self.gap - cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_like_tabwriter() {
        let mut t = Table::new(&["NAME", "PORT", "MATCH"], 5);
        t.push(vec!["a-long-name".into(), "80".into(), "/*".into()]);
        t.push(vec!["".into(), "9080".into(), "".into()]);
        let expected = format!(
            "{:<16}{:<9}{}\n{:<16}{:<9}{}\n{:<16}{:<9}\n",
            "NAME", "PORT", "MATCH", "a-long-name", "80", "/*", "", "9080"
        );
        assert_eq!(t.render(), expected);
        assert_eq!(t.len(), 2);
    }
}
