//! Follows what a person types into the console terminal, to notice the stop command.
//!
//! Keystrokes go to the PTY unchanged; this only keeps a copy of the current line (printable
//! characters, backspace, Ctrl-U) so that typing `stop⏎` is a stop, not a crash.

/// The line being typed.
#[derive(Debug, Default)]
pub(crate) struct TypedLine {
    line: String,
}

/// Longest line followed; longer input is not a command we look for.
const MAX_LINE: usize = 256;

impl TypedLine {
    /// Feeds keystrokes; returns each line completed by Enter.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut completed = Vec::new();
        for c in String::from_utf8_lossy(bytes).chars() {
            match c {
                '\r' | '\n' => completed.push(std::mem::take(&mut self.line)),
                '\u{7f}' | '\u{8}' => {
                    self.line.pop();
                }
                '\u{15}' | '\u{3}' => self.line.clear(),
                c if c.is_control() => {}
                c if self.line.len() < MAX_LINE => self.line.push(c),
                _ => {}
            }
        }
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::TypedLine;

    #[test]
    fn follows_editing_keys() {
        let mut typed = TypedLine::default();
        assert!(typed.feed(b"sto").is_empty());
        assert_eq!(typed.feed(b"pp\x7f\r"), vec!["stop"]);
        assert_eq!(typed.feed(b"say x\x15list\n"), vec!["list"]);
    }
}
