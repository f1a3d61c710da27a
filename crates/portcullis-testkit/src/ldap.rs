//! A real OpenLDAP directory for Basic authentication tests: Debian's
//! `slapd` (see `scripts/setup.sh`) with its own config and `mdb` database
//! in a temporary directory, seeded with `slapadd` before it starts, on a
//! free loopback port. Users get `{SSHA}` password hashes from
//! `slappasswd`, as an administrator would make them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const LDAP_SUFFIX: &str = "dc=example,dc=com";
pub const LDAP_PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const LDAP_GROUPS: &str = "ou=groups,dc=example,dc=com";

/// What the directory holds.
#[derive(Default)]
pub struct LdapSeed<'a> {
    /// `(uid, password)`, under [`LDAP_PEOPLE`].
    pub users: &'a [(&'a str, &'a str)],
    /// `(cn, member uids)`: groupOfNames, members by DN.
    pub groups: &'a [(&'a str, &'a [&'a str])],
    /// `(cn, member uids)`: posixGroup, members by name (memberUid).
    pub posix_groups: &'a [(&'a str, &'a [&'a str])],
    /// `(certificate PEM, key PEM)`: StartTLS offered with this pair, and
    /// an `ldaps://` listener on a port of its own ([`Slapd::ldaps_port`]).
    pub tls: Option<(&'a str, &'a str)>,
}

/// A running slapd; killed when dropped.
pub struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    ldaps_port: Option<u16>,
    child: Option<Child>,
}

impl Slapd {
    /// Configures, seeds and starts slapd; returns once it accepts
    /// connections.
    pub fn start(seed: &LdapSeed<'_>) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = write_config(dir.path(), seed.tls);
        let ldif = dir.path().join("seed.ldif");
        std::fs::write(&ldif, seed_ldif(seed)).expect("write the seed LDIF");
        let added = Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif)
            .output()
            .expect("run slapadd (apt-get install slapd; see scripts/setup.sh)");
        assert!(
            added.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        let port = crate::process::free_port();
        // Two free ports may come back equal: the first is not held.
        let ldaps_port = seed.tls.map(|_| {
            std::iter::repeat_with(crate::process::free_port)
                .find(|&other| other != port)
                .expect("an endless iterator")
        });
        let mut listeners = format!("ldap://127.0.0.1:{port}/");
        if let Some(ldaps) = ldaps_port {
            listeners.push_str(&format!(" ldaps://127.0.0.1:{ldaps}/"));
        }
        let child = Command::new(sbin("slapd"))
            // -d keeps slapd in the foreground, so this Child is slapd itself.
            .args(["-d", "0", "-f"])
            .arg(&conf)
            .arg("-h")
            .arg(listeners)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slapd");
        crate::process::wait_port(port, "slapd");
        if let Some(ldaps) = ldaps_port {
            crate::process::wait_port(ldaps, "slapd (ldaps)");
        }
        Slapd {
            dir,
            port,
            ldaps_port,
            child: Some(child),
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `ldaps://` listener's port, when the seed had a certificate.
    pub fn ldaps_port(&self) -> Option<u16> {
        self.ldaps_port
    }

    /// The directory files live in (config, database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills slapd (SIGKILL, by its pid) and waits for it: the directory is
    /// down from here on.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sbin(name: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(name);
    if path.exists() {
        path
    } else {
        PathBuf::from(name)
    }
}

/// A slapd.conf: the schemas users and groups need, one mdb database,
/// passwords readable by nobody (usable for binds only), the rest readable
/// by signed-in users (group searches run as the user).
fn write_config(dir: &Path, tls: Option<(&str, &str)>) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create the database directory");
    let mut conf = String::new();
    for schema in ["core", "cosine", "nis", "inetorgperson"] {
        let _ = writeln!(conf, "include /etc/ldap/schema/{schema}.schema");
    }
    let _ = writeln!(conf, "pidfile {}", dir.join("slapd.pid").display());
    let _ = writeln!(conf, "modulepath /usr/lib/ldap\nmoduleload back_mdb");
    if let Some((cert, key)) = tls {
        let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&cert_path, cert).expect("write the server certificate");
        std::fs::write(&key_path, key).expect("write the server key");
        let _ = writeln!(conf, "TLSCertificateFile {}", cert_path.display());
        let _ = writeln!(conf, "TLSCertificateKeyFile {}", key_path.display());
    }
    let _ = writeln!(conf, "database mdb\nmaxsize 16777216");
    let _ = writeln!(conf, "suffix \"{LDAP_SUFFIX}\"");
    let _ = writeln!(conf, "rootdn \"cn=admin,{LDAP_SUFFIX}\"");
    let _ = writeln!(conf, "directory {}", data.display());
    conf.push_str("access to attrs=userPassword by anonymous auth by * none\n");
    conf.push_str("access to * by users read by * none\n");
    let path = dir.join("slapd.conf");
    std::fs::write(&path, conf).expect("write slapd.conf");
    path
}

fn seed_ldif(seed: &LdapSeed<'_>) -> String {
    let mut ldif = format!(
        "dn: {LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: {LDAP_PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {LDAP_GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (uid, password) in seed.users {
        let _ = write!(
            ldif,
            "dn: uid={uid},{LDAP_PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {}\n\n",
            ssha(password)
        );
    }
    for (cn, members) in seed.groups {
        let _ = write!(
            ldif,
            "dn: cn={cn},{LDAP_GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n"
        );
        for uid in *members {
            let _ = writeln!(ldif, "member: uid={uid},{LDAP_PEOPLE}");
        }
        ldif.push('\n');
    }
    for (gid, (cn, members)) in seed.posix_groups.iter().enumerate() {
        let _ = write!(
            ldif,
            "dn: cn={cn},{LDAP_GROUPS}\nobjectClass: posixGroup\ncn: {cn}\ngidNumber: {}\n",
            5000 + gid
        );
        for uid in *members {
            let _ = writeln!(ldif, "memberUid: {uid}");
        }
        ldif.push('\n');
    }
    ldif
}

/// `{SSHA}` of `password`, from `slappasswd`.
fn ssha(password: &str) -> String {
    let out = Command::new(sbin("slappasswd"))
        .args(["-h", "{SSHA}", "-s", password])
        .output()
        .expect("run slappasswd");
    assert!(out.status.success(), "slappasswd failed");
    String::from_utf8(out.stdout)
        .expect("slappasswd prints ASCII")
        .trim()
        .to_string()
}
