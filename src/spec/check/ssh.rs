//! SSH access: Ed25519 keys only (with the reason others are refused), user
//! names valid, and at least one admin who can log in.

use super::Ctx;
use crate::spec::model::HostSpec;
use crate::spec_path;

/// base64 of the wire-format prefix `\0\0\0\x0bssh-ed25519`.
const ED25519_BLOB_PREFIX: &str = "AAAAC3NzaC1lZDI1NTE5";
/// base64 of `\0\0\0\x1ask-ssh-ed25519@openssh.com` (FIDO security keys).
const SK_ED25519_BLOB_PREFIX: &str = "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t";

/// Why `key` is not an acceptable OpenSSH public key line, if it is not.
pub fn ed25519_key(key: &str) -> Result<(), String> {
    // One authorized_keys line: a line break would add a key line of its own.
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!("it holds {c:?}; write one key per string, on one line"));
    }
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let blob = parts.next().unwrap_or("");
    match kind {
        "ssh-ed25519" if blob.starts_with(ED25519_BLOB_PREFIX) && blob.len() == 68 => Ok(()),
        "sk-ssh-ed25519@openssh.com" if blob.starts_with(SK_ED25519_BLOB_PREFIX) => Ok(()),
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => Err("the key data is not a valid Ed25519 public key (truncated or pasted wrongly?)".into()),
        "ssh-rsa" => Err("RSA keys are refused: this server accepts only Ed25519 (ssh-rsa signatures use SHA-1 and RSA keys are often too short)".into()),
        "ssh-dss" => Err("DSA keys are refused: DSA is broken and removed from OpenSSH; this server accepts only Ed25519".into()),
        k if k.starts_with("ecdsa-") => Err("ECDSA keys are refused: this server accepts only Ed25519".into()),
        "" => Err("the key is empty".into()),
        other => Err(format!("{other:?} is not an OpenSSH public key type; this server accepts only ssh-ed25519")),
    }
}

/// The rule for Linux user names.
pub fn user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub fn check(host: &HostSpec, ctx: &mut Ctx) {
    for (u, user) in host.users.iter().enumerate() {
        if !user_name(&user.name) {
            ctx.error(
                spec_path!["users", u, "name"],
                format!("user name {:?} is not a valid Linux user name", user.name),
                "use lower-case letters, digits, '_' and '-', starting with a letter, at most 32 bytes",
            );
        }
        if user.name == "root" {
            ctx.error(
                spec_path!["users", u, "name"],
                "root cannot be declared: root login is disabled on this server",
                "declare an admin user instead (admin = true) and use sudo",
            );
        }
        if host.users[..u].iter().any(|o| o.name == user.name) {
            ctx.error(
                spec_path!["users", u, "name"],
                format!("user {:?} is declared twice", user.name),
                "merge the two [[users]] entries",
            );
        }
        for (k, key) in user.ssh_keys.iter().enumerate() {
            if let Err(why) = ed25519_key(key) {
                ctx.error(
                    spec_path!["users", u, "ssh_keys", k],
                    format!("SSH key of {:?} rejected: {why}", user.name),
                    "create one with `ssh-keygen -t ed25519` and paste the .pub line",
                );
            }
        }
    }
    let can_log_in = host.users.iter().any(|u| u.admin && !u.ssh_keys.is_empty());
    if !can_log_in {
        ctx.error(
            if host.users.is_empty() { spec_path![] } else { spec_path!["users"] },
            "no admin user has an SSH key, so nobody could log in to this server",
            "add a [[users]] entry with admin = true and ssh_keys = [\"ssh-ed25519 AAAA...\"]",
        );
    }
}
