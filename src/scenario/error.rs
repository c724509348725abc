//! Errors of scenario loading, always pointing at a file and, where the
//! problem is inside it, a line and column.

use std::path::{Path, PathBuf};

/// A scenario that cannot be used. Rendered as `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}: no scenarios found (expected *.toml files or folders with scenario.toml)", path.display())]
    Empty { path: PathBuf },
}

impl ScenarioError {
    /// An error at byte offset `offset` of `text`, with 1-based line and
    /// column (in characters).
    pub(crate) fn at(path: &Path, text: &str, offset: usize, message: String) -> ScenarioError {
        let (line, column) = line_column(text, offset);
        ScenarioError::At {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

/// 1-based line and column of a byte offset.
#[must_use]
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut end = offset;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn offsets_become_lines_and_columns() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
    }
}
