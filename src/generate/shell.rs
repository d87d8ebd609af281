//! Shell words: one function for every value that lands in a POSIX shell
//! (the disko hooks the generator writes, the commands `ghostgen deploy` runs over SSH).

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_stays_one_word() {
        for s in ["@work", "a b", "it's", "$(reboot)", "`x`", "a\nb", ""] {
            let out =
                std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", quote(s))).output().unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
