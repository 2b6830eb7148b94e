//! A one-line text field with a recall list of earlier entries (Up/Down) and, for path
//! fields, completion of directory names (Tab), as a shell completes them.

use std::path::Path;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key did to a field.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldKey {
    /// The text changed (or the cursor moved).
    Edited,
    /// Enter: the entry is done.
    Done,
    /// Not a key for the field (Tab with nothing to complete, function keys, ...).
    Ignored,
}

#[derive(Debug, Default, Clone)]
pub struct Field {
    pub text: String,
    /// Earlier entries, oldest first.
    recall: Vec<String>,
    /// Position in `recall` while paging through it.
    recalling: Option<usize>,
    /// Tab completes directory names.
    pub completes_dirs: bool,
}

impl Field {
    pub fn new(text: &str, completes_dirs: bool) -> Field {
        Field {
            text: text.to_string(),
            completes_dirs,
            ..Field::default()
        }
    }

    /// Remembers the current text in the recall list (no duplicates, last is newest).
    pub fn remember(&mut self) {
        let text = self.text.trim().to_string();
        if text.is_empty() {
            return;
        }
        self.recall.retain(|t| *t != text);
        self.recall.push(text);
        self.recalling = None;
    }

    /// The recall list, newest first.
    pub fn earlier(&self) -> impl Iterator<Item = &str> {
        self.recall.iter().rev().map(String::as_str)
    }

    pub fn key(&mut self, key: KeyEvent) -> FieldKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('u') if ctrl => self.text.clear(),
            KeyCode::Char(c) if !ctrl => self.text.push(c),
            KeyCode::Backspace => {
                self.text.pop();
            }
            KeyCode::Enter => return FieldKey::Done,
            KeyCode::Up => self.recall_step(true),
            KeyCode::Down => self.recall_step(false),
            KeyCode::Tab if self.completes_dirs => {
                if !self.complete() {
                    return FieldKey::Ignored;
                }
            }
            _ => return FieldKey::Ignored,
        }
        FieldKey::Edited
    }

    /// Up: an older entry; Down: a newer one, then the empty field.
    fn recall_step(&mut self, older: bool) {
        if self.recall.is_empty() {
            return;
        }
        let last = self.recall.len() - 1;
        self.recalling = match (self.recalling, older) {
            (None, true) => Some(last),
            (None, false) => None,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i < last => Some(i + 1),
            (Some(_), false) => None,
        };
        self.text = self
            .recalling
            .map(|i| self.recall[i].clone())
            .unwrap_or_default();
    }

    /// Completes the last path component to the longest common prefix of the matching
    /// directories, with a `/` when only one matches. False when nothing was added.
    fn complete(&mut self) -> bool {
        let (dir, prefix) = match self.text.rfind('/') {
            Some(i) => (&self.text[..=i], &self.text[i + 1..]),
            None => ("", self.text.as_str()),
        };
        let names = directory_names(if dir.is_empty() { "." } else { dir }, prefix);
        let Some(first) = names.first() else {
            return false;
        };
        let common = names.iter().fold(first.clone(), |acc, n| {
            acc.chars()
                .zip(n.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect()
        });
        let mut completed = format!("{dir}{common}");
        if names.len() == 1 {
            completed.push('/');
        }
        if completed == self.text {
            return false;
        }
        self.text = completed;
        true
    }
}

/// The names of the subdirectories of `dir` that start with `prefix`, sorted; hidden ones
/// only when `prefix` starts with a dot.
pub fn directory_names(dir: &str, prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(Path::new(dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix) && (prefix.starts_with('.') || !n.starts_with('.')))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn recall_pages_through_earlier_entries() {
        let mut f = Field::new("", false);
        for name in ["alice", "bob", "alice"] {
            f.text = name.into();
            f.remember();
        }
        f.text.clear();
        f.key(key(KeyCode::Up));
        assert_eq!(f.text, "alice");
        f.key(key(KeyCode::Up));
        assert_eq!(f.text, "bob");
        f.key(key(KeyCode::Down));
        assert_eq!(f.text, "alice");
        f.key(key(KeyCode::Down));
        assert_eq!(f.text, "");
    }

    #[test]
    fn tab_completes_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("statefiles")).unwrap();
        std::fs::create_dir(dir.path().join("stash")).unwrap();
        std::fs::write(dir.path().join("stale"), "").unwrap();
        let base = dir.path().display().to_string();
        let mut f = Field::new(&format!("{base}/st"), true);
        assert_eq!(f.key(key(KeyCode::Tab)), FieldKey::Edited);
        assert_eq!(f.text, format!("{base}/sta"));
        f.text.push('t');
        f.key(key(KeyCode::Tab));
        assert_eq!(f.text, format!("{base}/statefiles/"));
        assert_eq!(f.key(key(KeyCode::Tab)), FieldKey::Ignored);
    }
}
