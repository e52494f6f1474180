//! The connection to a Herald server's `AdminService` and the session token
//! every call carries.

use std::sync::Arc;

use herald_proto::pb;
use herald_proto::pb::admin_service_client::AdminServiceClient;
use herald_proto::tls::{ConnectError, ServerTrust, client_config, connect};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::ClientError;

/// The generated gRPC client with the session token attached to each call.
pub type AdminRpc = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every request when a token is
/// set; without one, requests go out bare (only `Login` works then).
#[derive(Clone, Default)]
pub struct BearerToken(Option<Arc<str>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.as_ref().map(|_| "<hidden>");
        f.debug_tuple("BearerToken").field(&shown).finish()
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
                tonic::Status::unauthenticated(
                    "the saved session token contains characters a header cannot carry; log in again",
                )
            })?;
            request
                .metadata_mut()
                .insert(herald_proto::AUTHORIZATION, value);
        }
        Ok(request)
    }
}

/// An admin's connection to one Herald server.
///
/// Cloning is cheap: clones share the underlying HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct AdminClient {
    channel: Channel,
    token: Option<String>,
}

impl AdminClient {
    /// Connects to `server` (`https://host:port`, `host:port` or `host`),
    /// trusting it as `trust` says. Fails now if the server cannot be reached
    /// or its certificate is not trusted.
    pub async fn connect(server: &str, trust: ServerTrust) -> Result<Self, ClientError> {
        let config = client_config(&trust, None)
            .map_err(|e| ClientError::Config(format!("cannot set up TLS for {server}: {e}")))?;
        let channel = connect(server, config).await.map_err(|e| match e {
            ConnectError::Tls(e) => ClientError::Config(e.to_string()),
            ConnectError::Transport(detail) => ClientError::Connect {
                server: server.to_owned(),
                detail,
            },
        })?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps a channel the caller has already set up (for example in tests).
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            channel,
            token: None,
        }
    }

    /// Uses `token` (from an earlier [`AdminClient::login`]) on every call.
    #[must_use]
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// The session token in use, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Logs in with name and password and keeps the session token for the
    /// calls that follow.
    pub async fn login(
        &mut self,
        name: &str,
        password: &str,
    ) -> Result<pb::LoginResponse, ClientError> {
        let response = self
            .rpc()
            .login(pb::LoginRequest {
                name: name.to_owned(),
                password: password.to_owned(),
            })
            .await?
            .into_inner();
        self.token = Some(response.session_token.clone());
        Ok(response)
    }

    /// The gRPC client, for any call; it carries the current token.
    pub fn rpc(&self) -> AdminRpc {
        AdminServiceClient::with_interceptor(
            self.channel.clone(),
            BearerToken(self.token.as_deref().map(Arc::from)),
        )
    }

    /// Who the caller is and which grants it holds.
    pub async fn whoami(&self) -> Result<pb::AdminInfo, ClientError> {
        Ok(self
            .rpc()
            .who_am_i(pb::WhoAmIRequest {})
            .await?
            .into_inner())
    }

    /// Every org unit, parents before their children.
    pub async fn units(&self) -> Result<Vec<pb::OrgUnit>, ClientError> {
        Ok(self
            .rpc()
            .list_org_units(pb::ListOrgUnitsRequest {})
            .await?
            .into_inner()
            .units)
    }

    /// Fetches the org units and finds the one `spec` names (see
    /// [`resolve_unit`]).
    pub async fn unit(&self, spec: &str) -> Result<pb::OrgUnit, ClientError> {
        let units = self.units().await?;
        resolve_unit(&units, spec).cloned()
    }
}

/// How many unit paths an "unknown unit" error lists.
const KNOWN_UNITS_SHOWN: usize = 10;

/// Finds the org unit `spec` names: a unit id, a path such as
/// `/Branches/Branch 3` (the leading and a trailing `/` are optional), or
/// `/` for the root. Ids win over paths.
pub fn resolve_unit<'a>(
    units: &'a [pb::OrgUnit],
    spec: &str,
) -> Result<&'a pb::OrgUnit, ClientError> {
    let trimmed = spec.trim();
    if trimmed.is_empty() {
        return Err(ClientError::Invalid(
            "no org unit given: use an id or a path such as / or /Branches".to_owned(),
        ));
    }
    if let Some(unit) = units.iter().find(|u| u.id == trimmed) {
        return Ok(unit);
    }
    let path = normalize_path(trimmed);
    let matches: Vec<&pb::OrgUnit> = units.iter().filter(|u| u.path == path).collect();
    match matches.as_slice() {
        [unit] => Ok(unit),
        [] => Err(unknown_unit(units, spec)),
        several => {
            let ids: Vec<&str> = several.iter().map(|u| u.id.as_str()).collect();
            Err(ClientError::Invalid(format!(
                "org unit path {path:?} is ambiguous: use one of the ids {}",
                ids.join(", ")
            )))
        }
    }
}

/// `Branches/Branch 3/` → `/Branches/Branch 3`; empty → `/`.
fn normalize_path(spec: &str) -> String {
    let inner = spec.trim_matches('/');
    format!("/{inner}")
}

fn unknown_unit(units: &[pb::OrgUnit], spec: &str) -> ClientError {
    if units.is_empty() {
        return ClientError::Invalid(format!(
            "no org unit {spec:?}: the server returned no org units"
        ));
    }
    let shown: Vec<&str> = units
        .iter()
        .take(KNOWN_UNITS_SHOWN)
        .map(|u| u.path.as_str())
        .collect();
    let more = units.len().saturating_sub(KNOWN_UNITS_SHOWN);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    ClientError::Invalid(format!(
        "no org unit {spec:?}: known units are {}{tail}",
        shown.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::{sample_units, unit};

    #[test]
    fn resolves_units_by_id_and_path() {
        let units = sample_units();
        let cases = [
            ("u-b3", Some("u-b3")),
            ("/", Some("root")),
            ("", None),
            ("root", Some("root")),
            ("/Branches/Branch 3", Some("u-b3")),
            ("Branches/Branch 3", Some("u-b3")),
            ("/Branches/", Some("u-br")),
            (" /HR ", Some("u-hr")),
            ("/branches", None),
            ("/Branches/Branch", None),
            ("Branch 3", None),
        ];
        for (spec, want) in cases {
            let got = resolve_unit(&units, spec).ok().map(|u| u.id.as_str());
            assert_eq!(got, want, "{spec:?}");
        }
    }

    #[test]
    fn unknown_unit_errors_list_known_paths() {
        let units = sample_units();
        let err = resolve_unit(&units, "/x").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "no org unit \"/x\": known units are /, /Branches, /Branches/Branch 3, \
                 /Branches/Branch 7, /HR"
            )
        );

        let many: Vec<pb::OrgUnit> = (0..13)
            .map(|i| unit(&format!("id{i}"), "", &format!("/U{i}")))
            .collect();
        let err = resolve_unit(&many, "/x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.ends_with("/U9 and 3 more"), "{err}");

        let err = resolve_unit(&[], "/x").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("no org unit \"/x\": the server returned no org units")
        );
    }

    #[test]
    fn ambiguous_paths_ask_for_an_id() {
        let units = vec![unit("a", "", "/Same"), unit("b", "", "/Same")];
        let err = resolve_unit(&units, "/Same").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("org unit path \"/Same\" is ambiguous: use one of the ids a, b")
        );
    }

    #[test]
    fn bearer_token_is_added_only_when_set() {
        let mut bare = BearerToken::default();
        let request = bare.call(tonic::Request::new(())).unwrap();
        assert!(
            request
                .metadata()
                .get(herald_proto::AUTHORIZATION)
                .is_none()
        );

        let mut with = BearerToken(Some(Arc::from("abc123")));
        let request = with.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request
                .metadata()
                .get(herald_proto::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer abc123")
        );

        let mut bad = BearerToken(Some(Arc::from("a\nb")));
        assert!(bad.call(tonic::Request::new(())).is_err());
        assert_eq!(format!("{with:?}"), "BearerToken(Some(\"<hidden>\"))");
    }
}
