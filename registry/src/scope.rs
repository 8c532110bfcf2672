//! A Bearer token whose scope covers a cross-repository mount.
//!
//! oci-client asks the token server for one repository's scope per request. A mount
//! (`POST /v2/TARGET/blobs/uploads/?mount=D&from=SOURCE`) needs `pull,push` on the
//! target and `pull` on the source in the same token, else the registry quietly
//! answers with a plain upload session and the blob is uploaded after all. So before
//! mounting, this asks the realm from the registry's `WWW-Authenticate` challenge for
//! all the scopes at once, the target's and each source's (as the token spec allows, one
//! `scope` parameter each), and hands
//! the token to oci-client's token cache for the target's push operations. A registry
//! that does not challenge with Bearer (none, or Basic) needs nothing here.

use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};

use crate::client::{Client, Session};
use crate::error::Error;
use crate::reference::Reference;

/// A Bearer challenge: where to get a token and for which service.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BearerChallenge {
    pub(crate) realm: String,
    pub(crate) service: Option<String>,
}

/// The Bearer challenge in a `WWW-Authenticate` value, if there is one.
pub(crate) fn bearer_challenge(header: &str) -> Option<BearerChallenge> {
    http_auth::ChallengeParser::new(header)
        .filter_map(Result::ok)
        .find_map(|c| {
            if !c.scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            Some(BearerChallenge {
                realm: param("realm")?,
                service: param("service"),
            })
        })
}

impl Client {
    /// Makes the target's push token also cover `pull` on each of `sources`. Failing to
    /// get such a token is not an error: a mount then falls back to an upload.
    pub(crate) async fn authorize_mount(
        &self,
        session: &Session,
        sources: &[&Reference],
    ) -> Result<(), Error> {
        let registry = session.reference.registry();
        let url = format!(
            "{}://{}/v2/",
            self.scheme(registry),
            session.oci.resolve_registry()
        );
        let ctx = session.ctx();
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ctx.request(&e))?;
        let Some(challenge) = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_challenge)
        else {
            return Ok(());
        };
        let mut query = vec![(
            "scope",
            format!("repository:{}:pull,push", session.reference.repository()),
        )];
        for source in sources {
            query.push(("scope", format!("repository:{}:pull", source.repository())));
        }
        if let Some(service) = challenge.service {
            query.push(("service", service));
        }
        let mut request = self.http.get(&challenge.realm).query(&query);
        if let RegistryAuth::Basic(user, password) = &session.cred.auth {
            request = request.basic_auth(user, Some(password));
        }
        let Ok(response) = request.send().await else {
            return Ok(());
        };
        if !response.status().is_success() {
            return Ok(());
        }
        let Ok(token) = response.json::<RegistryToken>().await else {
            return Ok(());
        };
        self.oci
            .tokens
            .insert(
                &session.oci,
                RegistryOperation::Push,
                RegistryTokenType::Bearer(token),
            )
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_among_challenges() {
        let c = bearer_challenge(
            r#"Basic realm="x", Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.example/token");
        assert_eq!(c.service.as_deref(), Some("registry.example"));
        assert_eq!(bearer_challenge(r#"Basic realm="Registry Realm""#), None);
    }
}
