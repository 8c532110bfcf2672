//! The build user of a build image: the uid and gid buildpacks run as on it.
//!
//! The platform spec has a build image say it twice: `CNB_USER_ID`/`CNB_GROUP_ID` in its env
//! and the config's `User`. A numeric or empty `User` keeps the env first (each id 1000 when
//! neither says), as the lifecycle reads the env. A `User` by name (`cnb`, `cnb:cnb`,
//! `cnb:1000`) is looked up in the image's own `etc/passwd` and `etc/group`, read from its
//! layers ([`crate::imagefile`]), never the host's: the user's uid, and the named group's gid
//! or else the user's primary gid. A name the image does not know falls back to the env, and
//! without that it is an error naming the image and the user, never a silent default.

use std::path::Path;

use crate::imagefile::{ImageFileError, read_image_file};
use crate::runimage::{DEFAULT_CNB_ID, RunImage};

/// Why a build image's build user cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum BuildUserError {
    /// `CNB_USER_ID`, `CNB_GROUP_ID` or a `User` id is not a number.
    #[error("build image `{reference}` sets {name}=`{value}`, which is not a numeric id")]
    InvalidId {
        /// The build image reference.
        reference: String,
        /// The variable (or `User`).
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A `User` by name that the image's `etc/passwd` or `etc/group` does not list, and no
    /// `CNB_USER_ID`/`CNB_GROUP_ID` to fall back on.
    #[error(
        "build image `{reference}` runs as User `{user}`, but {why}, and its env sets no CNB_USER_ID and CNB_GROUP_ID"
    )]
    UnknownUser {
        /// The build image reference.
        reference: String,
        /// The config's `User`.
        user: String,
        /// What the lookup found.
        why: String,
    },
    /// Its `etc/passwd` or `etc/group` cannot be read from its layers.
    #[error("build image `{reference}`: cannot read `{file}` to look up User `{user}`")]
    Read {
        /// The build image reference.
        reference: String,
        /// The config's `User`.
        user: String,
        /// The file.
        file: &'static str,
        /// Why.
        #[source]
        source: ImageFileError,
    },
}

/// The uid and gid buildpacks run as on the build image `image`.
///
/// # Errors
/// See [`BuildUserError`].
pub fn build_user(image: &RunImage) -> Result<(u32, u32), BuildUserError> {
    let user = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .unwrap_or_default();
    let user = user.trim();
    let (name, group) = match user.split_once(':') {
        Some((name, group)) => (name, Some(group)),
        None => (user, None),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let by_name = !(name.is_empty() || numeric(name)) || group.is_some_and(|g| !numeric(g));
    if !by_name {
        if let Some(ids) = env_ids(image)? {
            return Ok(ids);
        }
        let id = |value: &str| {
            value.parse().map_err(|_| BuildUserError::InvalidId {
                reference: image.reference.clone(),
                name: "User",
                value: user.to_owned(),
            })
        };
        return match (name, group) {
            ("", _) => Ok((DEFAULT_CNB_ID, DEFAULT_CNB_ID)),
            (uid, None) => Ok((id(uid)?, id(uid)?)),
            (uid, Some(gid)) => Ok((id(uid)?, id(gid)?)),
        };
    }
    match lookup(image, user, name, group)? {
        Ok(ids) => Ok(ids),
        Err(why) => env_ids(image)?.ok_or_else(|| BuildUserError::UnknownUser {
            reference: image.reference.clone(),
            user: user.to_owned(),
            why,
        }),
    }
}

/// `CNB_USER_ID`/`CNB_GROUP_ID` of the image's env, when either is set (the other 1000).
fn env_ids(image: &RunImage) -> Result<Option<(u32, u32)>, BuildUserError> {
    if image.env_var("CNB_USER_ID").is_none() && image.env_var("CNB_GROUP_ID").is_none() {
        return Ok(None);
    }
    let id = |name: &'static str| match image.env_var(name) {
        None => Ok(DEFAULT_CNB_ID),
        Some(value) => value.trim().parse().map_err(|_| BuildUserError::InvalidId {
            reference: image.reference.clone(),
            name,
            value: value.to_owned(),
        }),
    };
    Ok(Some((id("CNB_USER_ID")?, id("CNB_GROUP_ID")?)))
}

/// Looks `name` (and `group`) up in the image's `etc/passwd` (and `etc/group`); the inner
/// `Err` says what is missing.
fn lookup(
    image: &RunImage,
    user: &str,
    name: &str,
    group: Option<&str>,
) -> Result<Result<(u32, u32), String>, BuildUserError> {
    let read = |file: &'static str| {
        read_image_file(image, Path::new(file))
            .map(|content| content.map(|c| String::from_utf8_lossy(&c).into_owned()))
            .map_err(|source| BuildUserError::Read {
                reference: image.reference.clone(),
                user: user.to_owned(),
                file,
                source,
            })
    };
    let (uid, primary_gid) = if let Ok(uid) = name.parse::<u32>() {
        (uid, None)
    } else {
        let Some(passwd) = read("etc/passwd")? else {
            return Ok(Err("the image has no /etc/passwd".to_owned()));
        };
        match find_entry(&passwd, name) {
            Some(fields) => match (fields.first(), fields.get(1)) {
                (Some(uid), Some(gid)) => match (uid.parse(), gid.parse()) {
                    (Ok(uid), Ok(gid)) => (uid, Some(gid)),
                    _ => return Ok(Err(format!("its /etc/passwd has a bad entry for `{name}`"))),
                },
                _ => return Ok(Err(format!("its /etc/passwd has a bad entry for `{name}`"))),
            },
            None => return Ok(Err(format!("its /etc/passwd has no user `{name}`"))),
        }
    };
    let gid = match group {
        None => match primary_gid {
            Some(gid) => gid,
            // A numeric uid with no group: the uid's own, as for `User: 1000`.
            None => uid,
        },
        Some(group) => {
            if let Ok(gid) = group.parse::<u32>() {
                gid
            } else {
                let Some(groups) = read("etc/group")? else {
                    return Ok(Err("the image has no /etc/group".to_owned()));
                };
                match find_entry(&groups, group).and_then(|fields| fields.first()?.parse().ok()) {
                    Some(gid) => gid,
                    None => return Ok(Err(format!("its /etc/group has no group `{group}`"))),
                }
            }
        }
    };
    Ok(Ok((uid, gid)))
}

/// The fields after the password of the `name:` line of a passwd- or group-style file
/// (`uid:gid:…` or `gid:members`); the first such line wins, as getpwnam's does.
fn find_entry<'a>(file: &'a str, name: &str) -> Option<Vec<&'a str>> {
    file.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.skip(1).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_name() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ncnb:x:1001:1002:cnb:/home/cnb:/bin/bash\n";
        assert_eq!(find_entry(passwd, "cnb").unwrap()[..2], ["1001", "1002"]);
        assert_eq!(find_entry(passwd, "cn"), None);
        assert_eq!(find_entry("cnb:x:1003:\n", "cnb").unwrap(), ["1003", ""]);
    }
}
