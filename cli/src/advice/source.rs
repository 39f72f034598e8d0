//! Python source parsed for the rules: Ruff's AST of the module, and line numbers of its
//! byte offsets (the profile speaks in lines).

use ruff_python_ast::ModModule;
use ruff_text_size::{Ranged, TextSize};

pub struct Source {
    pub module: ModModule,
    /// Byte offset of the start of each line; line n (1-based) starts at `line_starts[n - 1]`.
    line_starts: Vec<u32>,
}

impl Source {
    /// Parses a whole module. A file that is not valid Python (Python 2, a template, a
    /// file changed since the run) is refused with the parser's first error.
    pub fn parse(text: &str) -> Result<Source, String> {
        let parsed = ruff_python_parser::parse_module(text).map_err(|e| e.to_string())?;
        let mut line_starts = vec![0u32];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i as u32 + 1),
        );
        Ok(Source {
            module: parsed.into_syntax(),
            line_starts,
        })
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: TextSize) -> u32 {
        let o = u32::from(offset);
        self.line_starts.partition_point(|&s| s <= o) as u32
    }

    /// The first and last line a node spans.
    pub fn lines(&self, node: &impl Ranged) -> (u32, u32) {
        let r = node.range();
        // The end offset is exclusive: a node ending at a newline ends on the line before.
        let end = r.end().max(r.start() + TextSize::from(1)) - TextSize::from(1);
        (self.line_of(r.start()), self.line_of(end))
    }

    pub fn first_line(&self, node: &impl Ranged) -> u32 {
        self.line_of(node.range().start())
    }
}
