//! Attribute-file text to blocks: the pest grammar (`cpr.pest`), then a check of every
//! word it took, with errors that name `file:line:column`, what was found there and what
//! was expected, in words.

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest_derive::Parser;

use super::socket_instance::{FORMS, SocketPattern};
use super::{
    Block, BlockTarget, DirAction, FileAction, FileRule, ForkAction, SocketAction, SocketRule,
    WillAction,
};
use crate::error::{Error, Kind, Result};
use crate::target::IdType;

#[derive(Parser)]
#[grammar = "attrfile/cpr.pest"]
struct CprParser;

const ID_TYPES: &[(&str, Option<IdType>)] = &[
    ("PID", Some(IdType::Pid)),
    ("GID", Some(IdType::Gid)),
    ("SID", Some(IdType::Sid)),
    ("HID", Some(IdType::Hid)),
    ("SGP", Some(IdType::Sgp)),
    ("ASH", Some(IdType::Ash)),
    ("JID", Some(IdType::Jid)),
    ("*", None),
];

const FILE_ACTIONS: &[(&str, FileAction)] = &[
    ("MERGE", FileAction::Merge),
    ("IGNORE", FileAction::Ignore),
    ("APPEND", FileAction::Append),
    ("REPLACE", FileAction::Replace),
    ("SUBSTITUTE", FileAction::Substitute),
];

const WILL_ACTIONS: &[(&str, WillAction)] = &[
    ("EXIT", WillAction::Exit),
    ("KILL", WillAction::Kill),
    ("CONT", WillAction::Cont),
];

const DIR_ACTIONS: &[(&str, DirAction)] = &[
    ("REPLACE", DirAction::Replace),
    ("IGNORE", DirAction::Ignore),
];

const FORK_ACTIONS: &[(&str, ForkAction)] =
    &[("ORIGINAL", ForkAction::Original), ("ANY", ForkAction::Any)];

const SOCKET_ACTIONS: &[(&str, SocketAction)] = &[
    ("REFUSE", SocketAction::Refuse),
    ("REPAIR", SocketAction::Repair),
    ("RECONNECT", SocketAction::Reconnect),
    ("CLOSE", SocketAction::Close),
];

const POLICIES: &[&str] = &["FILE", "WILL", "CDIR", "RDIR", "FORK", "SOCKET"];

/// Parses the whole text into its blocks, in file order.
pub(super) fn parse_blocks(text: &str, source: &str) -> Result<Vec<Block>> {
    let file = CprParser::parse(Rule::file, text)
        .map_err(|e| syntax_error(&e, text, source))?
        .next();
    let mut blocks = Vec::new();
    for pair in file.into_iter().flat_map(|f| f.into_inner()) {
        if pair.as_rule() == Rule::block {
            blocks.push(block(pair, source)?);
        }
    }
    Ok(blocks)
}

/// An "Invalid argument" error about the place where `pair` starts.
fn error_at(source: &str, pair: &Pair<Rule>, detail: String) -> Error {
    let (line, col) = pair.as_span().start_pos().line_col();
    Error::with_detail(
        format!("{source}:{line}:{col}"),
        Kind::InvalidArgument,
        detail,
    )
}

fn block(pair: Pair<Rule>, source: &str) -> Result<Block> {
    let line = pair.as_span().start_pos().line_col().0;
    let mut id_type = None;
    let mut id_value = None;
    let mut lbrace = None;
    let mut statements = Vec::new();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::id_type => id_type = Some(part),
            Rule::id_value => id_value = Some(part),
            Rule::lbrace => lbrace = Some(part),
            Rule::statement => statements.push(part),
            _ => {}
        }
    }
    let (Some(id_type), Some(lbrace)) = (id_type, lbrace) else {
        // The grammar guarantees both; say so rather than panic if it ever changes.
        return Err(Error::with_detail(
            format!("{source}:{line}"),
            Kind::InvalidArgument,
            "incomplete CKPT header",
        ));
    };
    let target = target(&id_type, id_value.as_ref(), &lbrace, source)?;
    let mut block = Block {
        target,
        files: Vec::new(),
        will: None,
        cdir: None,
        rdir: None,
        fork: None,
        sockets: Vec::new(),
        line,
    };
    for statement in statements {
        policy_line(&mut block, statement, source)?;
    }
    Ok(block)
}

fn target(
    id_type: &Pair<Rule>,
    id_value: Option<&Pair<Rule>>,
    lbrace: &Pair<Rule>,
    source: &str,
) -> Result<BlockTarget> {
    let kind = keyword(id_type, ID_TYPES, "ID type", source)?;
    let Some(kind) = kind else {
        return match id_value {
            Some(v) if v.as_str() != "*" => Err(error_at(
                source,
                v,
                format!(
                    "unexpected {:?} (a * block names every process: write \"CKPT * {{\")",
                    v.as_str()
                ),
            )),
            _ => Ok(BlockTarget::Any),
        };
    };
    let Some(value) = id_value else {
        return Err(error_at(
            source,
            lbrace,
            format!(
                "unexpected \"{{\" (expected an ID value after {})",
                id_type.as_str()
            ),
        ));
    };
    let text = value.as_str();
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    let valid_digits = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    match u64::from_str_radix(digits, radix) {
        Ok(id) if valid_digits => Ok(BlockTarget::Id(kind, id)),
        Err(_) if valid_digits => Err(error_at(
            source,
            value,
            format!("ID value {text:?} is too large"),
        )),
        _ => Err(error_at(
            source,
            value,
            format!("invalid ID value {text:?} (expected a decimal or 0x hexadecimal number)"),
        )),
    }
}

/// Looks a word up, case-insensitively, in a table of keywords.
fn keyword<T: Copy>(word: &Pair<Rule>, table: &[(&str, T)], what: &str, source: &str) -> Result<T> {
    let text = word.as_str();
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, value)| value)
        .ok_or_else(|| {
            let valid: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            error_at(
                source,
                word,
                format!("unknown {what} {text:?} (valid: {})", valid.join(", ")),
            )
        })
}

fn policy_line(block: &mut Block, statement: Pair<Rule>, source: &str) -> Result<()> {
    let mut policy = None;
    let mut instance = None;
    let mut action = None;
    for part in statement.into_inner() {
        match part.as_rule() {
            Rule::policy => policy = Some(part),
            Rule::instance => instance = Some(part),
            Rule::action => action = Some(part),
            _ => {}
        }
    }
    let (Some(policy), Some(action)) = (policy, action) else {
        return Ok(()); // the grammar guarantees both
    };
    let name = policy.as_str().to_ascii_uppercase();
    if !POLICIES.contains(&name.as_str()) {
        return Err(error_at(
            source,
            &policy,
            format!(
                "unknown policy {:?} (valid: {})",
                policy.as_str(),
                POLICIES.join(", ")
            ),
        ));
    }
    if let (false, Some(instance)) = (name == "FILE" || name == "SOCKET", &instance) {
        return Err(error_at(
            source,
            instance,
            format!(
                "{name} takes no instance {} (only FILE and SOCKET do)",
                instance.as_str()
            ),
        ));
    }
    let what = format!("{name} action");
    match name.as_str() {
        "FILE" => {
            let action = keyword(&action, FILE_ACTIONS, &what, source)?;
            let pattern = match instance {
                Some(instance) => Some(file_pattern(&instance, source)?),
                None => None,
            };
            block.files.push(FileRule { pattern, action });
        }
        "WILL" => block.will = Some(keyword(&action, WILL_ACTIONS, &what, source)?),
        "CDIR" => block.cdir = Some(keyword(&action, DIR_ACTIONS, &what, source)?),
        "RDIR" => block.rdir = Some(keyword(&action, DIR_ACTIONS, &what, source)?),
        "SOCKET" => {
            let action = keyword(&action, SOCKET_ACTIONS, &what, source)?;
            let pattern = match instance {
                Some(instance) => Some(socket_pattern(&instance, source)?),
                None => None,
            };
            block.sockets.push(SocketRule { pattern, action });
        }
        _ => block.fork = Some(keyword(&action, FORK_ACTIONS, &what, source)?),
    }
    Ok(())
}

/// The glob between the quotes of a FILE instance, checked.
fn file_pattern(instance: &Pair<Rule>, source: &str) -> Result<String> {
    let text = instance
        .clone()
        .into_inner()
        .find(|p| p.as_rule() == Rule::pattern)
        .map(|p| p.as_str())
        .unwrap_or("");
    if text.is_empty() {
        return Err(error_at(
            source,
            instance,
            "empty file instance \"\" (expected a file name or pattern)".into(),
        ));
    }
    glob::Pattern::new(text).map_err(|e| {
        error_at(
            source,
            instance,
            format!("invalid file pattern {text:?}: {}", e.msg),
        )
    })?;
    Ok(text.to_string())
}

/// The text between the quotes of a SOCKET instance, checked.
fn socket_pattern(instance: &Pair<Rule>, source: &str) -> Result<String> {
    let text = instance
        .clone()
        .into_inner()
        .find(|p| p.as_rule() == Rule::pattern)
        .map(|p| p.as_str())
        .unwrap_or("");
    match SocketPattern::parse(text) {
        Ok(_) => Ok(text.to_string()),
        Err(_) if text.is_empty() => Err(error_at(
            source,
            instance,
            format!("empty socket instance \"\" (expected {FORMS})"),
        )),
        Err(why) => Err(error_at(
            source,
            instance,
            format!("invalid socket instance {text:?}: {why}"),
        )),
    }
}

/// One line for a pest error: `file:line:col: Invalid argument: unexpected "x" (expected
/// "{")`.
fn syntax_error(err: &pest::error::Error<Rule>, text: &str, source: &str) -> Error {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((p, _)) => p,
    };
    let (line, col) = match pest::Position::new(text, pos) {
        Some(p) => p.line_col(),
        None => (1, 1),
    };
    let found = found_at(text, pos);
    let detail = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } if !positives.is_empty() => {
            let mut rules = positives.clone();
            rules.sort_by_key(|r| rule_order(*r));
            let mut words: Vec<&str> = Vec::new();
            for rule in rules {
                let word = rule_words(rule);
                if !words.contains(&word) {
                    words.push(word);
                }
            }
            format!("unexpected {found} (expected {})", or_list(&words))
        }
        ErrorVariant::ParsingError { .. } => format!("unexpected {found}"),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    Error::with_detail(
        format!("{source}:{line}:{col}"),
        Kind::InvalidArgument,
        detail,
    )
}

/// What the user would call the token a rule stands for.
fn rule_words(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::block | Rule::ckpt => "\"CKPT\"",
        Rule::id_type => "an ID type (PID, GID, SID, HID, SGP, ASH, JID or *)",
        Rule::id_value => "an ID value",
        Rule::lbrace => "\"{\"",
        Rule::rbrace => "\"}\"",
        Rule::statement | Rule::policy => "a policy (FILE, WILL, CDIR, RDIR, FORK or SOCKET)",
        Rule::colon => "\":\"",
        Rule::instance | Rule::pattern => "an instance in double quotes",
        Rule::close_quote => "a closing double quote",
        Rule::action => "an action",
        _ => "something else",
    }
}

/// Where a rule's words go in an "expected" list: in the order they appear in a file.
fn rule_order(rule: Rule) -> u8 {
    match rule {
        Rule::file | Rule::block | Rule::ckpt => 0,
        Rule::id_type => 1,
        Rule::id_value => 2,
        Rule::lbrace => 3,
        Rule::statement | Rule::policy => 4,
        Rule::colon => 5,
        Rule::instance | Rule::pattern => 6,
        Rule::close_quote => 7,
        Rule::action => 8,
        Rule::rbrace => 9,
        Rule::EOI => 10,
        _ => 11,
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The token at byte `pos`, for messages: a word, a quoted string, a character, or "end
/// of line"/"end of file".
fn found_at(text: &str, pos: usize) -> String {
    const MAX: usize = 40;
    let rest = text.get(pos..).unwrap_or("");
    let mut chars = rest.chars();
    let token: String = match chars.next() {
        None => return "end of file".into(),
        Some('\n' | '\r') => return "end of line".into(),
        Some('"') => {
            // Shown as written, with its quotes.
            let body: String = chars
                .take_while(|&c| c != '"' && c != '\n')
                .flat_map(char::escape_default)
                .take(MAX)
                .collect();
            return format!("\"{body}\"");
        }
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => rest
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
            .collect(),
        Some(c) => c.to_string(),
    };
    let short: String = token.chars().take(MAX).collect();
    if short.len() < token.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_list_reads_as_english() {
        assert_eq!(or_list(&[]), "");
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b"]), "a or b");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }

    #[test]
    fn found_token_is_a_word_a_string_a_character_or_an_end() {
        let text = "CKPT x_1{ \"a b\" \u{e9}\n";
        assert_eq!(found_at(text, 0), "\"CKPT\"");
        assert_eq!(found_at(text, 5), "\"x_1\"");
        assert_eq!(found_at(text, 8), "\"{\"");
        assert_eq!(found_at(text, 10), "\"a b\"");
        assert_eq!(found_at(text, 16), "\"\u{e9}\"");
        assert_eq!(found_at(text, 18), "end of line");
        assert_eq!(found_at(text, 19), "end of file");
        assert_eq!(found_at(text, 17), "end of file"); // inside a character: no panic
        let long = "x".repeat(100);
        assert_eq!(found_at(&long, 0), format!("{:?}...", "x".repeat(40)));
    }

    #[test]
    fn every_rule_has_words() {
        for rule in [
            Rule::EOI,
            Rule::file,
            Rule::block,
            Rule::ckpt,
            Rule::id_type,
            Rule::id_value,
            Rule::lbrace,
            Rule::rbrace,
            Rule::statement,
            Rule::policy,
            Rule::action,
            Rule::colon,
            Rule::instance,
            Rule::pattern,
            Rule::close_quote,
        ] {
            assert_ne!(rule_words(rule), "something else", "{rule:?}");
            assert!(rule_order(rule) < 11, "{rule:?}");
        }
    }
}
