//! Knox's security providers carried over to `[service.auth]` and
//! `[service.authorize]` (PRODUCT.md §11, docs/policies.md "Moving from
//! Knox"): ShiroProvider with an LDAP realm → `basic`, JWTProvider and
//! SSOCookieProvider → `jwt`, the Default identity assertion →
//! `identity_header` and `knox_doas`, AclsAuthz → `[service.authorize]`.
//!
//! Knox's providers apply to every service of a topology, so each imported
//! service gets the same `[service.auth]`; AclsAuthz names its services.
//! Whatever cannot be carried over is a warning naming it. Where something
//! must be supplied by the operator (a key set, an audience), the output
//! refuses every token until it is; an authentication provider that cannot
//! be carried over at all says that the services are imported WITHOUT
//! authentication.

use std::fmt::Write as _;

use crate::toml_string;

/// Where the key set goes when Knox verified with a PEM key or its own
/// signing key: the operator writes it there (see the warning).
const JWKS_FILE: &str = "file:jwks.json";
/// Written when Knox checked no audience; Portcullis requires one.
const AUDIENCE_PLACEHOLDER: &str = "REPLACE-with-the-audience-your-tokens-carry";
/// Knox's issuer unless `jwt.expected.issuer` says otherwise.
const KNOX_ISSUER: &str = "KNOXSSO";

/// What the security providers of one topology said.
#[derive(Default)]
pub(crate) struct Security {
    ldap: Option<Ldap>,
    jwt: Option<Jwt>,
    /// The Default identity assertion is on: `?doAs=` for the backends.
    doas: bool,
    /// AclsAuthz params, in document order.
    acls: Option<Vec<(String, String)>>,
}

struct Ldap {
    url: String,
    bind_dn: String,
    group_base: Option<String>,
    /// Plain `ldap://` to another host: StartTLS asked for (Portcullis
    /// refuses to send passwords there in clear).
    starttls: bool,
}

struct Jwt {
    jwks: String,
    issuer: String,
    audiences: Vec<String>,
}

impl Security {
    /// Takes a provider this module knows; false for any other, which the
    /// caller warns about.
    pub(crate) fn read(
        &mut self,
        role: &str,
        name: &str,
        enabled: bool,
        params: &[(String, String)],
        warnings: &mut Vec<String>,
    ) -> bool {
        let known = matches!(
            (role, name),
            ("authentication", "ShiroProvider" | "Anonymous")
                | ("federation", "JWTProvider" | "SSOCookieProvider")
                | ("identity-assertion", "Default" | "Pseudo")
                | ("authorization", "AclsAuthz")
        );
        if !known {
            return false;
        }
        if !enabled {
            // Knox deploys a provider only with <enabled>true</enabled>.
            warnings.push(format!(
                "provider {role}/{name} is not carried over: it is not enabled in Knox"
            ));
            return true;
        }
        match name {
            // Knox's "no authentication": so is a service without [service.auth].
            "Anonymous" => {}
            "ShiroProvider" => self.ldap = read_shiro(params, warnings),
            "JWTProvider" | "SSOCookieProvider" if self.jwt.is_some() => warnings.push(format!(
                "provider {role}/{name} is not carried over: the topology already has a JWT provider"
            )),
            "JWTProvider" | "SSOCookieProvider" => self.jwt = Some(read_jwt(name, params, warnings)),
            "Default" | "Pseudo" => {
                self.doas = true;
                for (param, _) in params {
                    warnings.push(format!(
                        "identity-assertion param {param} is not carried over: Portcullis asserts the authenticated name as it is; map names in the directory or the identity provider"
                    ));
                }
            }
            _ => self.acls = Some(params.to_vec()),
        }
        true
    }

    /// Warnings about the topology as a whole, once its services are known.
    pub(crate) fn check(&self, roles: &[&str], warnings: &mut Vec<String>) {
        if self.doas && self.ldap.is_none() && self.jwt.is_none() {
            warnings.push(
                "the Default identity assertion is not carried over: no authentication provider was, and Portcullis asserts only an authenticated principal".to_string(),
            );
        }
        for (name, _) in self.acls.iter().flatten() {
            let covered = name == "acl.mode"
                || roles.iter().any(|r| {
                    let r = r.to_lowercase();
                    *name == format!("{r}.acl") || *name == format!("{r}.acl.mode")
                });
            if !covered {
                warnings.push(format!(
                    "AclsAuthz param {name} is not carried over: no service's role matches it (Knox looks up <role in lower case>.acl and .acl.mode)"
                ));
            }
        }
    }

    /// `[service.auth]` and `[service.authorize]` for the service with Knox
    /// role `role`; empty when Knox had neither.
    pub(crate) fn tables(&self, role: &str, warnings: &mut Vec<String>) -> String {
        let mut out = String::new();
        let authenticated = self.ldap.is_some() || self.jwt.is_some();
        if authenticated {
            out.push_str(&self.auth_table());
        }
        if let Some(acl) = self.acl_for(role, warnings) {
            let principal_kinds = acl.users.is_some() || acl.groups.is_some();
            if principal_kinds && !authenticated {
                warnings.push(format!(
                    "service {role}: the AclsAuthz users and groups are not carried over: no authentication provider was, so the service is imported without its ACL"
                ));
            } else {
                out.push_str(&acl.table());
            }
        }
        out
    }

    fn auth_table(&self) -> String {
        let mut out = String::from("\n[service.auth]\n");
        let mut methods = Vec::new();
        if self.jwt.is_some() {
            methods.push("\"jwt\"");
        }
        if self.ldap.is_some() {
            methods.push("\"basic\"");
        }
        let _ = writeln!(out, "methods = [{}]", methods.join(", "));
        if let Some(jwt) = &self.jwt {
            let audiences: Vec<String> = jwt.audiences.iter().map(|a| toml_string(a)).collect();
            let _ = writeln!(
                out,
                "jwt = {{ jwks = {}, issuer = {}, audiences = [{}] }}",
                toml_string(&jwt.jwks),
                toml_string(&jwt.issuer),
                audiences.join(", ")
            );
        }
        if let Some(ldap) = &self.ldap {
            let group_base = ldap
                .group_base
                .as_ref()
                .map(|g| format!(", group_base = {}", toml_string(g)))
                .unwrap_or_default();
            let starttls = if ldap.starttls {
                ", starttls = true"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "basic = {{ ldap = {}{starttls}, bind_dn = {}{group_base} }}",
                toml_string(&ldap.url),
                toml_string(&ldap.bind_dn)
            );
        }
        if self.doas {
            out.push_str(
                "identity_header = \"X-Forwarded-User\"  # Knox Default identity assertion\n",
            );
            out.push_str("knox_doas = true  # Knox Default identity assertion: ?doAs=<user>\n");
        }
        out
    }

    fn acl_for(&self, role: &str, warnings: &mut Vec<String>) -> Option<Acl> {
        let params = self.acls.as_ref()?;
        let lower = role.to_lowercase();
        let param = |key: &str| params.iter().rev().find(|(n, _)| n == key).map(|(_, v)| v);
        let value = param(&format!("{lower}.acl"))?;
        let mode = param(&format!("{lower}.acl.mode")).or_else(|| param("acl.mode"));
        parse_acl(role, value, mode.map(String::as_str), warnings)
    }
}

/// One service's ACL: `None` in a kind is Knox's `*` (not checked).
struct Acl {
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    cidrs: Option<Vec<String>>,
    any: bool,
}

impl Acl {
    fn table(&self) -> String {
        let mut out = String::from("\n[service.authorize]  # Knox AclsAuthz\n");
        for (key, list) in [
            ("users", &self.users),
            ("groups", &self.groups),
            ("cidrs", &self.cidrs),
        ] {
            if let Some(list) = list {
                let items: Vec<String> = list.iter().map(|s| toml_string(s)).collect();
                let _ = writeln!(out, "{key} = [{}]", items.join(", "));
            }
        }
        if self.any {
            out.push_str("mode = \"any\"  # Knox acl.mode = OR\n");
        }
        out
    }
}

/// `users;groups;ips`, each a comma list or `*`. In Knox's OR mode a `*`
/// counts as no match (so that OR never admits everyone by mistake); an
/// omitted kind in mode "any" does the same.
fn parse_acl(
    role: &str,
    value: &str,
    mode: Option<&str>,
    warnings: &mut Vec<String>,
) -> Option<Acl> {
    let parts: Vec<&str> = value.split(';').collect();
    if parts.len() != 3 {
        warnings.push(format!(
            "service {role}: AclsAuthz acl {value:?} is not carried over: expected users;groups;ips (Knox refuses to deploy it)"
        ));
        return None;
    }
    let any = match mode.map(str::trim) {
        None => false,
        Some(m) if m.eq_ignore_ascii_case("AND") => false,
        Some(m) if m.eq_ignore_ascii_case("OR") => true,
        Some(other) => {
            warnings.push(format!(
                "service {role}: AclsAuthz acl.mode {other:?} is neither AND nor OR: imported as AND"
            ));
            false
        }
    };
    let list = |part: &str| -> Option<Vec<String>> {
        let items: Vec<String> = part
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        (!items.is_empty() && !items.iter().any(|i| i == "*")).then_some(items)
    };
    let mut users = list(parts[0]);
    let mut groups = list(parts[1]);
    for (kind, names) in [("users", &mut users), ("groups", &mut groups)] {
        let Some(list) = names else { continue };
        let placeholder = if kind == "users" {
            "KNOX_ADMIN_USERS"
        } else {
            "KNOX_ADMIN_GROUPS"
        };
        if list.iter().any(|n| n == placeholder) {
            warnings.push(format!(
                "service {role}: AclsAuthz {placeholder} is not carried over: it names gateway-site.xml's admins, which Portcullis does not read; list them by name"
            ));
            list.retain(|n| n != placeholder);
            if list.is_empty() {
                warnings.push(format!(
                    "service {role}: the AclsAuthz acl is not carried over: its {kind} were only {placeholder}, so the service is imported without its ACL"
                ));
                return None;
            }
        }
    }
    let cidrs = list(parts[2]).and_then(|ips| {
        let nets: Vec<String> = ips
            .iter()
            .filter_map(|ip| cidr(role, ip, warnings))
            .collect();
        (!nets.is_empty()).then_some(nets)
    });
    if users.is_none() && groups.is_none() && cidrs.is_none() {
        // "*;*;*": everyone (AND) — or, in OR mode, no one at all.
        if any {
            warnings.push(format!(
                "service {role}: AclsAuthz acl {value:?} in OR mode admits no one in Knox; Portcullis has no such rule, so it is imported without an ACL: remove the service if no one should reach it"
            ));
        }
        return None;
    }
    Some(Acl {
        users,
        groups,
        cidrs,
        any,
    })
}

/// A Knox address pattern as a network: an address, a CIDR, or trailing
/// `*` octets (`10.1.*` is 10.1.0.0/16).
fn cidr(role: &str, ip: &str, warnings: &mut Vec<String>) -> Option<String> {
    if ip.parse::<ipnet::IpNet>().is_ok_and(|n| n.trunc() == n)
        || ip.parse::<std::net::IpAddr>().is_ok()
    {
        return Some(ip.to_string());
    }
    let octets: Vec<&str> = ip.split('.').collect();
    let fixed = octets.iter().take_while(|o| **o != "*").count();
    let wildcard = octets.len() == 4 && fixed > 0 && octets[fixed..].iter().all(|o| *o == "*");
    if wildcard && octets[..fixed].iter().all(|o| o.parse::<u8>().is_ok()) {
        let mut address: Vec<&str> = octets[..fixed].to_vec();
        address.resize(4, "0");
        return Some(format!("{}/{}", address.join("."), fixed * 8));
    }
    warnings.push(format!(
        "service {role}: AclsAuthz address {ip:?} is not carried over: expected an address, a CIDR or trailing * octets such as 10.1.*.*"
    ));
    None
}

fn read_shiro(params: &[(String, String)], warnings: &mut Vec<String>) -> Option<Ldap> {
    let mut realm = None;
    let (mut url, mut template, mut group_base, mut search_base) = (None, None, None, None);
    let mut groups_wanted = false;
    for (name, value) in params {
        let value = value.trim();
        match name.as_str() {
            "main.ldapRealm" => realm = Some(value),
            "main.ldapRealm.userDnTemplate" => template = Some(value),
            "main.ldapRealm.contextFactory.url" => url = Some(value),
            "main.ldapRealm.groupSearchBase" => group_base = Some(value),
            "main.ldapRealm.searchBase" => search_base = Some(value),
            "main.ldapRealm.authorizationEnabled" => groups_wanted = value == "true",
            // The realm's own wiring, and what Portcullis does anyway.
            "main.ldapContextFactory" | "main.ldapRealm.contextFactory" => {}
            "main.ldapRealm.contextFactory.authenticationMechanism" if value == "simple" => {}
            "urls./**" if value == "authcBasic" => {}
            _ => warnings.push(format!(
                "ShiroProvider param {name} is not carried over: {}",
                shiro_reason(name)
            )),
        }
    }
    let not_carried = |why: &str| {
        format!("provider authentication/ShiroProvider is not carried over: {why}; the services are imported WITHOUT authentication")
    };
    let ldap_realm =
        realm.is_some_and(|r| r.ends_with(".KnoxLdapRealm") || r.ends_with(".JndiLdapRealm"));
    if !ldap_realm {
        warnings.push(not_carried(&format!(
            "main.ldapRealm is {realm:?}, not an LDAP realm (KnoxLdapRealm or JndiLdapRealm)"
        )));
        return None;
    }
    let Some(url) = url.filter(|u| u.starts_with("ldap://") || u.starts_with("ldaps://")) else {
        warnings.push(not_carried(
            "main.ldapRealm.contextFactory.url is missing or not an ldap:// or ldaps:// URL",
        ));
        return None;
    };
    let Some(template) = template.filter(|t| t.contains("{0}")) else {
        warnings.push(not_carried(
            "main.ldapRealm.userDnTemplate with {0} is missing (Portcullis binds as uid={user},...; a user search before the bind is not supported)",
        ));
        return None;
    };
    let group_base = if groups_wanted {
        let base = group_base.or(search_base);
        if base.is_none() {
            warnings.push("ShiroProvider: authorizationEnabled is true but neither groupSearchBase nor searchBase is given: no group_base is written, so no groups are looked up".to_string());
        }
        base
    } else {
        None
    };
    let starttls = url.starts_with("ldap://") && !is_loopback_ldap(url);
    if starttls {
        warnings.push(format!("ShiroProvider: {url} is plain LDAP to another host; Portcullis never sends passwords there in clear, so the import asks for StartTLS (starttls = true): the directory must offer it, or use ldaps://, and tls_ca names its CA if the system roots do not"));
    }
    Some(Ldap {
        url: url.to_string(),
        bind_dn: template.replace("{0}", "{user}"),
        group_base: group_base.map(str::to_string),
        starttls,
    })
}

/// `ldap://HOST[:PORT]...` with a loopback HOST (as Knox's demo LDAP).
pub(crate) fn is_loopback_ldap(url: &str) -> bool {
    let rest = url.trim_start_matches("ldap://");
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => rest.split([':', '/']).next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn shiro_reason(name: &str) -> &'static str {
    if name.ends_with("systemUsername") || name.ends_with("systemPassword") {
        "Portcullis searches groups bound as the signed-in user, not as a system user"
    } else if name == "sessionTimeout" {
        "Portcullis keeps no sessions: every request carries its credentials (results are cached 60 s)"
    } else if name.starts_with("urls.") {
        "Portcullis authenticates every path of a service with [service.auth]"
    } else if name.contains("ache") {
        "Portcullis caches directory results itself (60 s for a success, 5 s for a failure)"
    } else if name.ends_with("authenticationMechanism") {
        "Portcullis binds with simple authentication only"
    } else if name.starts_with("main.ldapRealm.") {
        "Portcullis binds with bind_dn and finds groups under group_base itself (docs/policies.md)"
    } else {
        "it is not a setting Portcullis has"
    }
}

fn read_jwt(name: &str, params: &[(String, String)], warnings: &mut Vec<String>) -> Jwt {
    let sso = name == "SSOCookieProvider";
    let (audiences_key, pem_key) = if sso {
        ("sso.expected.audiences", "sso.token.verification.pem")
    } else {
        ("knox.token.audiences", "knox.token.verification.pem")
    };
    let mut jwt = Jwt {
        jwks: JWKS_FILE.to_string(),
        issuer: KNOX_ISSUER.to_string(),
        audiences: Vec::new(),
    };
    let (mut pem, mut url) = (false, false);
    for (key, value) in params {
        let value = value.trim();
        match key.as_str() {
            k if k == audiences_key => {
                jwt.audiences = value
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            k if k == pem_key => pem = true,
            "knox.token.jwks.url" if !sso && is_fetchable(value) => {
                jwt.jwks = value.to_string();
                url = true;
            }
            "jwt.expected.issuer" if !value.is_empty() => jwt.issuer = value.to_string(),
            "jwt.expected.sigalg" if matches!(value, "RS256" | "ES256" | "EdDSA") => {}
            "knox.token.principal.claim" if value == "sub" => {}
            _ => warnings.push(format!(
                "{name} param {key} is not carried over: {}",
                jwt_reason(key)
            )),
        }
    }
    if sso {
        warnings.push("SSOCookieProvider: Portcullis reads the token from `Authorization: Bearer` only, not from the hadoop-jwt cookie, and sends no browser to sign in: clients must send the token in that header".to_string());
    }
    if !url {
        let key = if pem {
            format!("{pem_key} (a PEM key is not a key set)")
        } else {
            "no key (Knox used its own signing key)".to_string()
        };
        warnings.push(format!(
            "{name} verified tokens with {key}: write the public key as a JWKS (RFC 7517) in jwks.json next to the topology, or set jwks to the identity provider's https JWKS URL; until then every token is refused"
        ));
    }
    if jwt.audiences.is_empty() {
        warnings.push(format!(
            "{name} checked no audience ({audiences_key} is not set); Portcullis requires one: replace {AUDIENCE_PLACEHOLDER:?} with the audience your tokens carry in \"aud\"; until then every token is refused"
        ));
        jwt.audiences.push(AUDIENCE_PLACEHOLDER.to_string());
    }
    jwt
}

/// What `[service.auth] jwt.jwks` accepts as a URL: https, or http to loopback.
fn is_fetchable(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| url.starts_with(p))
}

fn jwt_reason(key: &str) -> &'static str {
    match key {
        "knox.token.jwks.url" => "Portcullis fetches key sets over https only (http for loopback)",
        "jwt.expected.sigalg" => "Portcullis accepts RS256, ES256 and EdDSA",
        "knox.token.principal.claim" => "the principal is the token's \"sub\"",
        "knox.token.query.param.name" | "knox.token.use.cookie" | "sso.cookie.name" => {
            "Portcullis reads the token from `Authorization: Bearer` only"
        }
        "sso.authentication.provider.url" => "Portcullis sends no browser to sign in",
        "knox.token.exp.server-managed" => {
            "Portcullis keeps no token state: a token is valid until its exp"
        }
        _ => "it is not a setting Portcullis has",
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
