//! The command that joins a folder again as a new device, for a device the
//! server no longer knows (Error `UnknownClient`, R-4.5.11): the server,
//! the folder, the rate and the link options of this run, with `USER_ID`
//! left for the person to fill in (the user ID is a secret and is never
//! logged, R-2.2.3).

use super::secure::LinkSecurity;
use super::Config;

/// `cloud-client HOST PORT FOLDER RATE USER_ID [link options]` for `config`.
pub fn command(config: &Config) -> String {
    with_user(config, " USER_ID")
}

/// What a device whose user the server does not know (Error `UnknownUser`
/// to the Resume of a folder that joined, R-4.5.10) is told, after the
/// refusal itself: the likely causes, a restore from a backup older than
/// the user first (outside tester breaker19 G4: the old text asked only
/// for the right data directory or shard), that nothing changed, that it
/// keeps retrying, and, if the older data stays, how to make the user
/// again from this folder. Worded as R-4.5.11's `UnknownClient` text.
pub fn unknown_user_text(config: &Config) -> String {
    let folder = config.folder.display();
    format!(
        "this folder's user was known to the server when this device joined, so the server's \
         data is most likely older than the user: restored from a backup made before the user \
         existed, or the server is not running on its right data directory, or the right \
         shard. Nothing in {folder} was changed; this client keeps retrying, in case the \
         server's newer data comes back. If it does not (the restore stays), make the user \
         again from this folder: stop cloud-client, remove {folder}/.cloudservice and run {} \
         (no user ID: it creates a new user and uploads the folder), then join the other \
         devices to the new user ID (each with its .cloudservice removed; files are compared, \
         not deleted)",
        with_user(config, "")
    )
}

/// `cloud-client HOST PORT FOLDER RATE` and `user`, then the link options.
fn with_user(config: &Config, user: &str) -> String {
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
        "cloud-client {} {} {} {}{user}{link}",
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
