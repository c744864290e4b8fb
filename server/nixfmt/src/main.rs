//! `nixfmt-check`: the formatter `nix fmt` runs (alejandra), as a library, for CI machines
//! that cannot build Nix.
//!
//! Checks every `.nix` file given on the command line and prints the ones alejandra would
//! change, with the changed lines; exits 1 if any would change, 2 if any does not parse.
//! `--write` formats them in place instead.
//!
//! The published library stops at 3.1.0; nixpkgs' `alejandra` (what `nix fmt` and the
//! `nix-alejandra` flake check run) is 4.0.0. 4.0 leaves selections, `or` defaults and
//! `a ? b` as written where 3.1 lays them out, and adds `/** */` doc comments and pipe
//! operators, so what 3.1 accepts 4.0 accepts in practice: every `.nix` file of the
//! repository formatted identically under both when this was written.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut write = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--write" => write = true,
            "-h" | "--help" => {
                println!("usage: nixfmt-check [--write] FILE.nix...");
                return ExitCode::SUCCESS;
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("nixfmt-check: no files given (usage: nixfmt-check [--write] FILE.nix...)");
        return ExitCode::from(2);
    }

    let (mut unformatted, mut broken) = (0, 0);
    for path in &files {
        match check(path, write) {
            Outcome::Clean => {}
            Outcome::Formatted => println!("formatted {path}"),
            Outcome::Unformatted(diff) => {
                unformatted += 1;
                println!("not formatted: {path}\n{diff}");
            }
            Outcome::Broken(reason) => {
                broken += 1;
                eprintln!("nixfmt-check: {path}: {reason}");
            }
        }
    }
    println!(
        "nixfmt-check: {} file(s), {unformatted} not formatted, {broken} unreadable",
        files.len()
    );
    match (broken, unformatted) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}

enum Outcome {
    Clean,
    Formatted,
    Unformatted(String),
    Broken(String),
}

fn check(path: &str, write: bool) -> Outcome {
    let before = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    let (status, after) = alejandra::format::in_memory(path.to_string(), before.clone());
    match status {
        alejandra::format::Status::Error(reason) => Outcome::Broken(reason),
        alejandra::format::Status::Changed(false) => Outcome::Clean,
        alejandra::format::Status::Changed(true) if write => match std::fs::write(path, after) {
            Ok(()) => Outcome::Formatted,
            Err(e) => Outcome::Broken(e.to_string()),
        },
        alejandra::format::Status::Changed(true) => Outcome::Unformatted(diff(&before, &after)),
    }
}

/// The lines alejandra would change: `-N old` as written, `+N new` as alejandra wants
/// them, from a longest-common-subsequence table (files here are small).
fn diff(before: &str, after: &str) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    // common[i][j]: length of the LCS of old[i..] and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            (i, j) = (i + 1, j + 1);
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            out.push_str(&format!("-{:<4} {}\n", i + 1, old[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{:<4} {}\n", j + 1, new[j]));
            j += 1;
        }
    }
    if out.is_empty() {
        out.push_str("(whitespace at the end of the file)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn diff_shows_only_the_changed_lines() {
        let d = diff("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n");
        assert_eq!(d, "-2    b\n+2    B\n+5    e\n");
    }

    #[test]
    fn diff_of_a_missing_final_newline_says_so() {
        assert_eq!(diff("a", "a\n"), "(whitespace at the end of the file)\n");
    }
}
