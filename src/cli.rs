//! What the three binaries do with a wrong command line: one line on stderr
//! naming the problem, exit status 2 (README "Running a server", "Running
//! a client"). clap's own report is several lines (the error, a tip, the
//! usage, a hint); [`one_line`] folds it into one, and `--help` and
//! `--version` are left to clap as they are.

pub mod duration;

use clap::error::ErrorKind;
use clap::Parser;

/// Exit status of a wrong command line (clap's, and the usual one).
pub const USAGE_EXIT: i32 = 2;

/// Parses the process's arguments as `P`; on a wrong command line prints
/// [`one_line`] on stderr and exits with [`USAGE_EXIT`]. `--help` and
/// `--version` print what clap prints and exit 0.
pub fn parse_or_exit<P: Parser>(program: &str) -> P {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match P::try_parse_from(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let sub = subcommand_in(&P::command(), &args);
            exit_with(program, sub.as_deref(), &e)
        }
    }
}

/// Ends the process for clap's error `e`: help and version go out as clap
/// writes them; anything else is [`usage_exit`] with [`one_line`].
pub fn exit_with(program: &str, sub: Option<&str>, e: &clap::Error) -> ! {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    usage_exit(&one_line(program, sub, e))
}

/// The subcommand a command line names: its first argument, when that is
/// one of `command`'s subcommands.
pub fn subcommand_in(command: &clap::Command, args: &[std::ffi::OsString]) -> Option<String> {
    let first = args.get(1)?.to_str()?;
    command
        .get_subcommands()
        .any(|c| c.get_name() == first)
        .then(|| first.to_owned())
}

/// Prints `line` on stderr and exits with [`USAGE_EXIT`].
pub fn usage_exit(line: &str) -> ! {
    eprintln!("{line}");
    std::process::exit(USAGE_EXIT)
}

/// clap's error report as one line: `PROGRAM: <the problem>[ (<clap's
/// tip>)]; see PROGRAM [SUB] --help` (`sub`: the subcommand the command
/// line named, [`subcommand_in`]), e.g.
///
/// ```text
/// cloud-server: unexpected argument '--fsynk' found (a similar argument exists: '--fsync'); see cloud-server --help
/// cloud-server: the following required arguments were not provided: <USER_ID>; see cloud-server devices --help
/// ```
///
/// The report's first paragraph is the problem (a list, such as missing
/// arguments, is joined with ", "), `tip:` lines are kept, the usage and
/// "For more information" are dropped (the `--help` hint replaces them).
/// Control characters a user typed are shown escaped, so the result is
/// always exactly one line.
pub fn one_line(program: &str, sub: Option<&str>, e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut problem: Vec<String> = Vec::new();
    let mut tips: Vec<String> = Vec::new();
    for (n, paragraph) in text.split("\n\n").enumerate() {
        let lines = paragraph.lines().map(str::trim).filter(|l| !l.is_empty());
        if n == 0 {
            problem.extend(lines.map(str::to_owned));
            continue;
        }
        tips.extend(
            lines
                .filter_map(|l| l.strip_prefix("tip:"))
                .map(|t| t.trim().to_owned()),
        );
    }
    let mut line = String::new();
    if let Some((first, rest)) = problem.split_first() {
        line.push_str(first.strip_prefix("error:").unwrap_or(first).trim());
        if !rest.is_empty() {
            if !line.ends_with(':') {
                line.push(':');
            }
            line.push(' ');
            line.push_str(&rest.join(", "));
        }
    }
    if line.is_empty() {
        line.push_str("wrong command line");
    }
    if !tips.is_empty() {
        line.push_str(&format!(" ({})", tips.join("; ")));
    }
    let help = match sub {
        Some(sub) => format!("{program} {sub} --help"),
        None => format!("{program} --help"),
    };
    let line = format!("{program}: {line}; see {help}");
    crate::client::printable::escape_controls(&line).into_owned()
}

/// Where a hand-written synopsis and the parsers disagree: one sentence
/// per disagreement, none when the synopsis is true. `top` parses the
/// synopsis lines without a subcommand word, `subs` holds the subcommands
/// (the same command for `cloud-client`; `cloud-server` has two parsers).
///
/// Each entry of `synopsis` (a line starting with the program's name, with
/// its indented continuation lines) must give the positional arguments by
/// their value names in order, and every option (as `--long` or `-s`) with
/// its value name, and nothing the parser does not know; every subcommand
/// must have an entry (`a|b` names several with the same arguments). The
/// `--help | --version` entry is skipped. The binaries' unit tests call it.
pub fn synopsis_gaps(top: &clap::Command, subs: &clap::Command, synopsis: &str) -> Vec<String> {
    // Introspection needs built commands (actions and value counts set).
    let (mut top, mut subs) = (top.clone(), subs.clone());
    top.build();
    subs.build();
    let (top, subs) = (&top, &subs);
    let program = top.get_name().to_owned();
    let mut entries: Vec<String> = Vec::new();
    for line in synopsis.lines() {
        match entries.last_mut() {
            Some(last) if line.starts_with(char::is_whitespace) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => entries.push(line.trim().to_owned()),
        }
    }
    let mut gaps = Vec::new();
    let mut seen_subs: Vec<String> = Vec::new();
    for entry in &entries {
        let cleaned: String = entry
            .chars()
            .map(|c| if "[]()".contains(c) { ' ' } else { c })
            .collect();
        let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
        if tokens.first() != Some(&program.as_str()) {
            gaps.push(format!(
                "synopsis line {entry:?} does not start with {program}"
            ));
            continue;
        }
        tokens.remove(0);
        if tokens.first().is_some_and(|t| t.starts_with("--help")) {
            continue;
        }
        let is_word = |t: &str| {
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '|')
        };
        match tokens.first() {
            Some(first) if is_word(first) && !first.starts_with('-') => {
                for name in first.split('|') {
                    seen_subs.push(name.to_owned());
                    match subs.find_subcommand(name) {
                        Some(sub) => gaps.extend(form_gaps(sub, &tokens[1..], entry)),
                        None => gaps.push(format!("{entry:?}: no subcommand {name}")),
                    }
                }
            }
            _ => gaps.extend(form_gaps(top, &tokens, entry)),
        }
    }
    for sub in subs.get_subcommands() {
        let name = sub.get_name();
        if name != "help" && !seen_subs.iter().any(|s| s == name) {
            gaps.push(format!("subcommand {name} is not in the synopsis"));
        }
    }
    gaps
}

/// [`synopsis_gaps`] for one form: `tokens` after the program (and
/// subcommand) name, brackets already blanked.
fn form_gaps(cmd: &clap::Command, tokens: &[&str], entry: &str) -> Vec<String> {
    let mut gaps = Vec::new();
    let mut positionals = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        i += 1;
        if token == "|" || token.starts_with(':') {
            continue;
        }
        if token.starts_with('-') {
            let arg = cmd.get_arguments().find(|a| {
                a.get_long().is_some_and(|l| token == format!("--{l}"))
                    || a.get_short().is_some_and(|s| token == format!("-{s}"))
            });
            let Some(arg) = arg else {
                gaps.push(format!(
                    "{entry:?}: {token} is not an option of {}",
                    cmd.get_name()
                ));
                continue;
            };
            options.push(arg.get_id().to_string());
            if arg.get_action().takes_values() {
                let want = arg
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map(ToString::to_string)
                    .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
                match tokens.get(i) {
                    Some(&value) if value == want => i += 1,
                    other => gaps.push(format!(
                        "{entry:?}: {token} takes {want}, synopsis has {other:?}"
                    )),
                }
            }
            continue;
        }
        positionals.push(token.split(':').next().unwrap_or(token).to_owned());
    }
    let want: Vec<String> = cmd
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .map(|a| {
            a.get_value_names()
                .and_then(|n| n.first())
                .map(ToString::to_string)
                .unwrap_or_else(|| a.get_id().to_string().to_uppercase())
        })
        .collect();
    if positionals != want {
        gaps.push(format!(
            "{entry:?}: arguments {positionals:?}, the parser has {want:?}"
        ));
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
        let id = arg.get_id().to_string();
        if matches!(id.as_str(), "help" | "version") || arg.is_hide_set() {
            continue;
        }
        if !options.contains(&id) {
            gaps.push(format!(
                "{entry:?}: option {id} of {} is missing",
                cmd.get_name()
            ));
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};
    use rand::{rngs::StdRng, Rng as _, SeedableRng};

    #[derive(Debug, Parser)]
    #[command(name = "prog")]
    struct Demo {
        #[command(subcommand)]
        command: Option<Sub>,
        #[arg(long)]
        fsync: bool,
        #[arg(long)]
        count: Option<u32>,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Devices { dir: String, user: String },
    }

    fn line_for(args: &[&str]) -> String {
        let e = Demo::try_parse_from(args).expect_err("a wrong command line");
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        one_line(
            "prog",
            subcommand_in(&Demo::command(), &args).as_deref(),
            &e,
        )
    }

    #[test]
    fn clap_reports_become_one_line_naming_the_problem() {
        let cases: [(&[&str], &str); 4] = [
            (
                &["prog", "--fsynk"],
                "prog: unexpected argument '--fsynk' found (a similar argument exists: '--fsync'); see prog --help",
            ),
            (
                &["prog", "--count", "x"],
                "prog: invalid value 'x' for '--count <COUNT>': invalid digit found in string; see prog --help",
            ),
            (
                &["prog", "devices", "d"],
                "prog: the following required arguments were not provided: <USER>; see prog devices --help",
            ),
            (
                &["prog", "devices"],
                "prog: the following required arguments were not provided: <DIR>, <USER>; see prog devices --help",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(line_for(args), want, "{args:?}");
        }
    }

    #[test]
    fn a_synopsis_that_drifted_from_the_parser_is_caught() {
        let cmd = Demo::command();
        let good = "prog [--fsync] [--count COUNT]\nprog devices DIR USER\nprog --help | --version";
        assert_eq!(synopsis_gaps(&cmd, &cmd, good), Vec::<String>::new());
        let drifts = [
            // an option missing, one the parser does not have, a wrong
            // value name, a missing or extra argument, a missing command
            "prog [--count COUNT]\nprog devices DIR USER",
            "prog [--fsync] [--count COUNT] [--shard N]\nprog devices DIR USER",
            "prog [--fsync] [--count N]\nprog devices DIR USER",
            "prog [--fsync] [--count COUNT]\nprog devices DIR",
            "prog [--fsync] [--count COUNT] EXTRA\nprog devices DIR USER",
            "prog [--fsync] [--count COUNT]",
            "prog [--fsync] [--count COUNT]\nprog devices DIR USER\nprog import DIR",
        ];
        for synopsis in drifts {
            assert!(
                !synopsis_gaps(&cmd, &cmd, synopsis).is_empty(),
                "not caught: {synopsis:?}"
            );
        }
    }

    #[test]
    fn any_wrong_command_line_is_one_line() {
        // Random command lines over a vocabulary with typos, values with
        // newlines and escapes, and subcommand words: whatever clap says,
        // what is printed has no line break nor control character.
        let words = [
            "--fsync",
            "--fsynk",
            "--count",
            "7",
            "x\ny",
            "\u{1b}[31m",
            "devices",
            "d",
            "u",
            "--",
            "-",
            "-z",
            "--count=",
            "extra",
            "",
        ];
        let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let mut args = vec!["prog".to_owned()];
            let seed: u64 = rng.random();
            let len = (seed % 6) as usize;
            for i in 0..len {
                let pick = (seed >> (8 * i)) as usize % words.len();
                args.push(words[pick].to_owned());
            }
            if let Err(e) = Demo::try_parse_from(&args) {
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    continue;
                }
                let line = one_line("prog", None, &e);
                assert!(line.starts_with("prog: "), "{args:?}: {line}");
                assert!(line.ends_with("--help"), "{args:?}: {line}");
                assert!(!line.chars().any(char::is_control), "{args:?}: {line:?}");
            }
        }
    }
}
