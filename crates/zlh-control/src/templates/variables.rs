//! Template variables: what an owner may set, and the rules (Laravel's, as eggs write them)
//! every value must satisfy.

use serde::{Deserialize, Serialize};

/// A variable as a template declares it: what the startup line and config files use, and
/// what its owner may see and change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    /// Its name, for people.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The environment name (`SERVER_JARFILE`).
    pub env: String,
    /// Its value unless the owner sets one.
    #[serde(default)]
    pub default: String,
    /// Whether the owner sees it.
    #[serde(default = "yes")]
    pub user_viewable: bool,
    /// Whether the owner may change it.
    #[serde(default = "yes")]
    pub user_editable: bool,
    /// What a value must satisfy, one rule each (`required`, `max:32`, `regex:/…/`).
    #[serde(default)]
    pub rules: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A variable with its rules read.
#[derive(Debug, Clone)]
pub struct Variable {
    /// What the template says.
    pub spec: VariableSpec,
    rules: Vec<Rule>,
}

impl Variable {
    /// Reads the rules; a rule no runtime of ours checks is said in `unsupported`, one that
    /// cannot be read is the error.
    pub fn new(spec: VariableSpec, unsupported: &mut Vec<String>) -> Result<Variable, String> {
        if spec.env.is_empty() || !spec.env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("a variable's env name `{}` is not a name", spec.env));
        }
        let rules = rules(&spec.env, &spec.rules, unsupported)?;
        Ok(Variable { spec, rules })
    }
}

/// One of the validation rules eggs use (Laravel's names).
#[derive(Debug, Clone)]
pub enum Rule {
    /// Not empty.
    Required,
    /// May be empty (then no other rule applies).
    Nullable,
    /// Any text (the `max`/`min`/`between` sizes are lengths).
    String,
    /// A number (sizes are values).
    Numeric,
    /// A whole number (sizes are values).
    Integer,
    /// `true`/`false`/`1`/`0`.
    Boolean,
    /// Letters only.
    Alpha,
    /// Letters and digits.
    AlphaNum,
    /// Letters, digits, `-` and `_`.
    AlphaDash,
    /// At most this size.
    Max(f64),
    /// At least this size.
    Min(f64),
    /// Between the two sizes.
    Between(f64, f64),
    /// Exactly this size.
    Size(f64),
    /// One of these.
    In(Vec<String>),
    /// None of these.
    NotIn(Vec<String>),
    /// Matching this pattern.
    Regex(regex::Regex),
}

impl Variable {
    /// Checks a value against the rules; the message says which rule failed, as people read it.
    pub fn check(&self, value: &str) -> Result<(), String> {
        // An empty value is refused when required; otherwise there is nothing to check.
        if value.is_empty() {
            return match self.rules.iter().any(|r| matches!(r, Rule::Required)) {
                true => Err(format!("{} is required", self.spec.name)),
                false => Ok(()),
            };
        }
        let numeric = self.rules.iter().any(|r| matches!(r, Rule::Numeric | Rule::Integer));
        let size =
            || if numeric { value.parse::<f64>().unwrap_or(f64::NAN) } else { value.chars().count() as f64 };
        let what = if numeric { "" } else { " characters" };
        let name = &self.spec.name;
        for rule in &self.rules {
            let ok = match rule {
                Rule::Required | Rule::Nullable | Rule::String => true,
                Rule::Numeric => value.parse::<f64>().is_ok_and(f64::is_finite),
                Rule::Integer => value.parse::<i64>().is_ok(),
                Rule::Boolean => matches!(value, "true" | "false" | "1" | "0"),
                Rule::Alpha => value.chars().all(char::is_alphabetic),
                Rule::AlphaNum => value.chars().all(char::is_alphanumeric),
                Rule::AlphaDash => value.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'),
                Rule::Max(max) => size() <= *max,
                Rule::Min(min) => size() >= *min,
                Rule::Between(min, max) => (*min..=*max).contains(&size()),
                Rule::Size(exact) => size() == *exact,
                Rule::In(allowed) => allowed.iter().any(|a| a == value),
                Rule::NotIn(refused) => !refused.iter().any(|r| r == value),
                Rule::Regex(pattern) => pattern.is_match(value),
            };
            if !ok {
                return Err(match rule {
                    Rule::Numeric => format!("{name} must be a number"),
                    Rule::Integer => format!("{name} must be a whole number"),
                    Rule::Boolean => format!("{name} must be true or false"),
                    Rule::Alpha => format!("{name} may hold letters only"),
                    Rule::AlphaNum => format!("{name} may hold letters and digits only"),
                    Rule::AlphaDash => format!("{name} may hold letters, digits, - and _ only"),
                    Rule::Max(max) => format!("{name} must be at most {max}{what}"),
                    Rule::Min(min) => format!("{name} must be at least {min}{what}"),
                    Rule::Between(min, max) => format!("{name} must be between {min} and {max}{what}"),
                    Rule::Size(exact) => format!("{name} must be exactly {exact}{what}"),
                    Rule::In(allowed) => format!("{name} must be one of: {}", allowed.join(", ")),
                    Rule::NotIn(_) => format!("{name} may not be that value"),
                    Rule::Regex(pattern) => format!("{name} must match {}", pattern.as_str()),
                    Rule::Required | Rule::Nullable | Rule::String => unreachable!("always satisfied"),
                });
            }
        }
        Ok(())
    }
}

/// Reads rules (`required`, `max:20`); rules no runtime of ours checks are listed in
/// `unsupported`.
fn rules(variable: &str, parts: &[String], unsupported: &mut Vec<String>) -> Result<Vec<Rule>, String> {
    let bad = |problem: String| format!("variable {variable}: {problem}");
    let number = |rule: &str, text: &str| {
        text.trim().parse::<f64>().map_err(|_| bad(format!("`{rule}` needs a number")))
    };
    let mut rules = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (name, argument) = part.split_once(':').unwrap_or((part, ""));
        rules.push(match name {
            "required" => Rule::Required,
            "nullable" | "sometimes" => Rule::Nullable,
            "string" => Rule::String,
            "numeric" => Rule::Numeric,
            "integer" | "int" => Rule::Integer,
            "boolean" | "bool" => Rule::Boolean,
            "alpha" => Rule::Alpha,
            "alpha_num" => Rule::AlphaNum,
            "alpha_dash" => Rule::AlphaDash,
            "max" => Rule::Max(number(part, argument)?),
            "min" => Rule::Min(number(part, argument)?),
            "size" => Rule::Size(number(part, argument)?),
            "between" => {
                let (min, max) =
                    argument.split_once(',').ok_or_else(|| bad(format!("`{part}` needs two numbers")))?;
                Rule::Between(number(part, min)?, number(part, max)?)
            }
            "in" => Rule::In(argument.split(',').map(str::to_owned).collect()),
            "not_in" => Rule::NotIn(argument.split(',').map(str::to_owned).collect()),
            "regex" => Rule::Regex(php_regex(argument).map_err(|e| bad(format!("`{part}`: {e}")))?),
            _ => {
                unsupported.push(format!("variable {variable}: the rule `{part}` is not checked"));
                continue;
            }
        });
    }
    Ok(rules)
}

/// Splits `a|b|regex:/x|y/` at the bars, keeping a regex (always the last of its rule) whole.
pub fn split_rules(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with("regex:") {
            parts.push(rest.to_owned());
            break;
        }
        let (part, after) = rest.split_once('|').unwrap_or((rest, ""));
        parts.push(part.to_owned());
        rest = after;
    }
    parts
}

/// A PHP pattern (`/^[a-z]+$/i`) as a Rust one: delimiters removed, flags kept where Rust has
/// them.
fn php_regex(text: &str) -> Result<regex::Regex, String> {
    let text = text.trim();
    let delimiter = text.chars().next().ok_or("an empty pattern")?;
    let end =
        text.rfind(delimiter).filter(|&end| end > 0).ok_or("a pattern without its closing delimiter")?;
    let (pattern, flags) = (&text[delimiter.len_utf8()..end], &text[end + delimiter.len_utf8()..]);
    let unicode = flags.contains('u');
    let flags: String = flags.chars().filter(|f| "imsx".contains(*f)).collect();
    let pattern = if flags.is_empty() { pattern.to_owned() } else { format!("(?{flags}){pattern}") };
    // PCRE without `/u` means ASCII classes (`\w` is `[A-Za-z0-9_]`), and so do we; a pattern
    // that could then match half a character is read with Unicode classes instead.
    let build = |unicode| regex::RegexBuilder::new(&pattern).unicode(unicode).size_limit(8 << 20).build();
    match build(unicode) {
        Err(_) if !unicode => build(true),
        built => built,
    }
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(rules: &str) -> Variable {
        let spec = VariableSpec {
            name: "Version".into(),
            description: String::new(),
            env: "VERSION".into(),
            default: String::new(),
            user_viewable: true,
            user_editable: true,
            rules: split_rules(rules),
        };
        Variable::new(spec, &mut Vec::new()).expect("rules")
    }

    #[test]
    fn rules_are_enforced_as_eggs_mean_them() {
        let text = variable("required|string|max:5");
        assert_eq!(text.check("1.20"), Ok(()));
        assert_eq!(text.check("1.20.4"), Err("Version must be at most 5 characters".into()));
        assert_eq!(text.check(""), Err("Version is required".into()));
        let number = variable("required|numeric|between:1,10");
        assert_eq!(number.check("10"), Ok(()));
        assert!(number.check("11").is_err() && number.check("ten").is_err());
        assert_eq!(variable("nullable|integer").check(""), Ok(()));
        assert_eq!(
            variable("in:paper,vanilla").check("forge"),
            Err("Version must be one of: paper, vanilla".into())
        );
        assert_eq!(variable("boolean").check("1"), Ok(()));
        let pattern = variable("required|regex:/^([0-9]+\\.[0-9]+(\\.[0-9]+)?|latest)$/i");
        assert_eq!(pattern.check("LATEST"), Ok(()));
        assert_eq!(pattern.check("1.2.3"), Ok(()));
        assert!(pattern.check("1.2.3; rm -rf /").is_err());
        // A bar inside the pattern is part of it.
        assert_eq!(variable("regex:/^(a|b)$/").check("b"), Ok(()));
    }

    #[test]
    fn unknown_rules_are_said_and_unreadable_ones_refused() {
        let mut unsupported = Vec::new();
        let read =
            rules("V", &["required".into(), "url".into(), "max:3".into()], &mut unsupported).expect("rules");
        assert_eq!(read.len(), 2);
        assert_eq!(unsupported, ["variable V: the rule `url` is not checked"]);
        let refused = rules("V", &["max:lots".into()], &mut unsupported);
        assert!(refused.is_err(), "{refused:?}");
        assert!(rules("V", &["regex:/(/".into()], &mut unsupported).is_err());
    }
}
