//! Why did it crash? Classification from the exit and the run's console output.
//!
//! Checked in order of how actionable the answer is: memory (kernel OOM kill or the JVM's own
//! error), a missing dependency, a mod or plugin to blame, then the bare exit.

use regex::RegexSet;
use zlh_proto::agent::CrashClassification;

use crate::config::CrashPatterns;
use zlh_proto::agent_config::Pattern;

const OOM: &[&str] = &[
    r"java\.lang\.OutOfMemoryError",
    r"There is insufficient memory for the Java Runtime Environment",
    r"(?i)\bout of memory\b",
];

const MISSING_DEPENDENCY: &[&str] = &[
    r"java\.lang\.NoClassDefFoundError",
    r"java\.lang\.ClassNotFoundException",
    r"java\.lang\.UnsupportedClassVersionError",
    r"error while loading shared libraries",
    r"cannot open shared object file",
    // Fabric: "Mod 'X' (x) 1.0 requires version 0.5 or later of mod 'fabric-api', which is missing!"
    r"(?i)\brequires\b.*\bwhich is missing\b",
    r"(?i)\brequires (any version of|version .* of) (mod )?\S+",
    // Forge: "Missing or unsupported mandatory dependencies:"
    r"(?i)missing or unsupported mandatory dependencies",
    r"(?i)\bUnknown dependency\b",
];

const MOD_OR_PLUGIN: &[&str] = &[
    // Forge crash reports: "Suspected Mods: <names>", but not "Suspected Mods: NONE" (the
    // regex crate has no look-ahead, hence the spelled-out alternatives).
    r"(?i)Suspected Mods?:\s*(?:[^N\s]|N[^o]|No[^n]|Non[^e])",
    r"net\.minecraftforge\.fml\.ModLoadingException",
    r"(?i)Caught exception from .+\(\S+\)",
    // Fabric and mixins.
    r"net\.fabricmc\.loader\.impl\.FormattedException",
    r"(?i)Mixin apply (for mod \S+ )?failed",
    // Bukkit / Spigot / Paper plugins.
    r"org\.bukkit\.plugin\.InvalidPluginException",
    r"Error occurred while enabling \S+",
    r"Could not load '(plugins|mods)/[^']+'",
    // A stack frame in a jar from mods/ or plugins/, as Forge and Paper print them.
    r"\bat \S+\(.*\)\s*~?\[(?:mods|plugins)/",
];

/// Lines that tell why a process ended without a known cause: the last of them is named.
const TELLING: &[&str] = &[
    r"(?i)\b(error|exception|fatal|panic|panicked|failed|failure|traceback|caused by|segmentation fault|aborted)\b",
    r"(?i)\bcannot\b|\bcould not\b|\bunable to\b|address already in use",
];

/// Compiled patterns, built once per agent.
#[derive(Debug)]
pub(crate) struct Classifier {
    oom: Matcher,
    missing_dependency: Matcher,
    mod_or_plugin_error: Matcher,
    telling: Matcher,
}

#[derive(Debug)]
struct Matcher {
    set: RegexSet,
}

impl Matcher {
    fn new(builtin: &[&str], extra: &[Pattern]) -> Matcher {
        let patterns =
            builtin.iter().map(|p| p.to_string()).chain(extra.iter().map(|r| r.as_str().to_owned()));
        // Every pattern compiled on its own already (builtins in tests, extras in config).
        let set = RegexSet::new(patterns).unwrap_or_else(|_| RegexSet::empty());
        Matcher { set }
    }

    fn first_match<'a>(&self, lines: &'a [String]) -> Option<&'a str> {
        lines.iter().find(|line| self.set.is_match(line)).map(String::as_str)
    }

    fn last_match<'a>(&self, lines: &'a [String]) -> Option<&'a str> {
        lines.iter().rev().find(|line| self.set.is_match(line)).map(String::as_str)
    }
}

/// The facts of an exit besides its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitFacts {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    /// The memory cgroup counted an OOM kill during this run.
    pub(crate) kernel_oom_kill: bool,
}

impl Classifier {
    pub(crate) fn new(extra: &CrashPatterns) -> Classifier {
        Classifier {
            oom: Matcher::new(OOM, &extra.oom),
            missing_dependency: Matcher::new(MISSING_DEPENDENCY, &extra.missing_dependency),
            mod_or_plugin_error: Matcher::new(MOD_OR_PLUGIN, &extra.mod_or_plugin_error),
            telling: Matcher::new(TELLING, &[]),
        }
    }

    /// The classification and the line or fact it rests on.
    pub(crate) fn classify(&self, lines: &[String], exit: ExitFacts) -> (CrashClassification, String) {
        const SIGKILL: i32 = 9;
        if exit.kernel_oom_kill && exit.signal == Some(SIGKILL) {
            return (
                CrashClassification::Oom,
                "killed by the kernel OOM killer: the memory limit was reached".to_owned(),
            );
        }
        let by_output = [
            (CrashClassification::Oom, &self.oom),
            (CrashClassification::MissingDependency, &self.missing_dependency),
            (CrashClassification::ModOrPluginError, &self.mod_or_plugin_error),
        ];
        for (classification, matcher) in by_output {
            if let Some(line) = matcher.first_match(lines) {
                return (classification, truncate(line.trim(), 300));
            }
        }
        // A bare exit, with the line of the output most likely to say why.
        let (classification, exit) = self.bare_exit(exit);
        match self.telling.last_match(lines) {
            Some(line) => (classification, format!("{exit}: {}", truncate(line.trim(), 300))),
            None => (classification, exit),
        }
    }

    /// A start stopped for not becoming ready in time, with the line most likely to say why.
    pub(crate) fn start_timeout(
        &self,
        lines: &[String],
        timeout: std::time::Duration,
    ) -> (CrashClassification, String) {
        let waited = format!("not ready within {}", humantime::format_duration(timeout));
        let reason = match self.telling.last_match(lines) {
            Some(line) => format!("{waited}: {}", truncate(line.trim(), 300)),
            None => waited,
        };
        (CrashClassification::StartTimeout, reason)
    }

    fn bare_exit(&self, exit: ExitFacts) -> (CrashClassification, String) {
        match (exit.code, exit.signal) {
            (Some(code), _) if code != 0 => {
                (CrashClassification::NonzeroExit, format!("exited with code {code}"))
            }
            (Some(_), _) => (
                CrashClassification::UnexpectedExit,
                "exited with code 0 without being asked to stop".to_owned(),
            ),
            (None, Some(signal)) => {
                (CrashClassification::UnexpectedExit, format!("killed by signal {}", signal_name(signal)))
            }
            (None, None) => (
                CrashClassification::UnexpectedExit,
                "the process vanished and its exit status is unknown".to_owned(),
            ),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `SIGKILL (9)` and friends, for messages.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    format!("{name} ({signal})")
}

/// Splits console bytes into lines without terminal escape codes or carriage returns.
pub(crate) fn console_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.split('\n').map(strip_terminal_codes).filter(|line| !line.is_empty()).collect()
}

/// Removes ANSI escape sequences (colours, cursor moves) and other control characters.
pub(crate) fn strip_terminal_codes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(
        output: &str,
        code: Option<i32>,
        signal: Option<i32>,
        kernel_oom_kill: bool,
    ) -> CrashClassification {
        let classifier = Classifier::new(&CrashPatterns::default());
        classifier.classify(&console_lines(output.as_bytes()), ExitFacts { code, signal, kernel_oom_kill }).0
    }

    #[test]
    fn builtin_patterns_compile() {
        for pattern in OOM.iter().chain(MISSING_DEPENDENCY).chain(MOD_OR_PLUGIN).chain(TELLING) {
            regex::Regex::new(pattern).expect(pattern);
        }
    }

    #[test]
    fn real_world_lines_are_classified() {
        use CrashClassification::*;
        let cases = [
            ("Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space", Some(1), Oom),
            (
                "Exception in thread \"main\" java.lang.NoClassDefFoundError: net/fabricmc/api/ModInitializer",
                Some(1),
                MissingDependency,
            ),
            (
                "java: error while loading shared libraries: libjli.so: cannot open shared object file",
                Some(127),
                MissingDependency,
            ),
            (
                "Mod 'Cool Mod' (coolmod) 1.2.0 requires version 0.90.0 or later of mod 'fabric-api', which is missing!",
                Some(1),
                MissingDependency,
            ),
            ("Suspected Mods: Cool Mod (coolmod), Version: 1.2.0", Some(1), ModOrPluginError),
            ("Suspected Mods: NONE", Some(1), NonzeroExit),
            (
                "[12:00:00 ERROR]: Error occurred while enabling EssentialsX v2.20.1 (Is it up to date?)",
                Some(1),
                ModOrPluginError,
            ),
            (
                "\tat com.example.coolmod.BlockTicker.tick(BlockTicker.java:42) ~[mods/coolmod-1.2.0.jar:?]",
                Some(1),
                ModOrPluginError,
            ),
            ("[Server] saving", Some(2), NonzeroExit),
            ("[Server] bye", Some(0), UnexpectedExit),
            ("", None, UnexpectedExit),
        ];
        for (line, code, expected) in cases {
            assert_eq!(classify(line, code, None, false), expected, "{line}");
        }
    }

    #[test]
    fn a_bare_exit_names_the_last_telling_line() {
        let classifier = Classifier::new(&CrashPatterns::default());
        let output = "[Server] Starting\n[Server] ERROR: world.dat is damaged\njava.lang.IllegalStateException: Failed to bind to port 25565\n\tat net.Server.bind(Server.java:1)\n[Server] Stopping";
        let facts = ExitFacts { code: Some(1), signal: None, kernel_oom_kill: false };
        let (classification, reason) = classifier.classify(&console_lines(output.as_bytes()), facts);
        assert_eq!(classification, CrashClassification::NonzeroExit);
        assert_eq!(
            reason,
            "exited with code 1: java.lang.IllegalStateException: Failed to bind to port 25565"
        );
        let quiet = classifier.classify(&console_lines(b"[Server] bye"), facts).1;
        assert_eq!(quiet, "exited with code 1", "nothing telling: the exit alone");
    }

    #[test]
    fn kernel_oom_kill_needs_sigkill_and_the_counter() {
        assert_eq!(classify("allocating", None, Some(9), true), CrashClassification::Oom);
        assert_eq!(classify("allocating", None, Some(9), false), CrashClassification::UnexpectedExit);
    }

    #[test]
    fn terminal_codes_are_stripped() {
        assert_eq!(strip_terminal_codes("\u{1b}[32m[INFO]\u{1b}[0m Done (1.0s)!\r"), "[INFO] Done (1.0s)!");
        assert_eq!(strip_terminal_codes("\u{1b}]0;title\u{7}prompt> "), "prompt> ");
        assert_eq!(console_lines(b"a\r\n\r\nb"), vec!["a", "b"]);
    }
}
