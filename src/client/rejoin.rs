//! The command that joins a folder again as a new device, for a device the
//! server no longer knows (Error `UnknownClient`, R-4.5.11): the server,
//! the folder, the rate and the link options of this run, with `USER_ID`
//! left for the person to fill in (the user ID is a secret and is never
//! logged, R-2.2.3).

use super::secure::LinkSecurity;
use super::Config;

/// `cloud-client HOST PORT FOLDER RATE USER_ID [link options]` for `config`.
pub fn command(config: &Config) -> String {
    let link = match &config.security {
        LinkSecurity::Plaintext => " --insecure-plaintext".to_string(),
        LinkSecurity::Tls { pin: Some(pin), .. } => format!(" --server-fingerprint {pin}"),
        LinkSecurity::Tls {
            pin: None,
            ca: Some(ca),
        } => format!(" --ca {}", quoted(&ca.display().to_string())),
        LinkSecurity::Tls { .. } => String::new(),
    };
    format!(
        "cloud-client {} {} {} {} USER_ID{link}",
        quoted(config.server.host()),
        config.server.port(),
        quoted(&config.folder.display().to_string()),
        config.pull_every.as_secs_f64(),
    )
}

/// `text` as one shell word: as it is when it holds only characters no
/// shell treats specially, else in single quotes.
fn quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:~+,@%=".contains(c));
    if plain {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_shell_would_split_or_expand_are_quoted() {
        assert_eq!(quoted("/home/me/Sync"), "/home/me/Sync");
        assert_eq!(quoted("192.0.2.10"), "192.0.2.10");
        assert_eq!(quoted("/home/me/My Sync"), "'/home/me/My Sync'");
        assert_eq!(quoted("it's"), "'it'\\''s'");
        assert_eq!(quoted("$HOME"), "'$HOME'");
        assert_eq!(quoted(""), "''");
    }
}
