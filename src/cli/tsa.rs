//! `hozon tsa …`: serve, keygen, cert, request, audit verify.

use super::read;
use crate::stores::{AuditLog, StoreAuditSink, StoreCounter};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use hozon_storage::Store;
use hozon_tsa::audit::{verify_chain, AuditWriter};
use hozon_tsa::clock::{Clock, ClockPolicy, KernelClock};
use hozon_tsa::config::{
    parse_digest, parse_scheme, FileConfig, KeySection, TlsSection, TsaSection,
};
use hozon_tsa::issuer::Issuer;
use hozon_tsa::protocol::{Accuracy, TimePrecision, TsaConfig};
use hozon_tsa::serial::SerialAllocator;
use hozon_tsa::signer::{CertifiedSigner, Signer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand)]
pub enum TsaCommand {
    /// Serve RFC 3161 over HTTP (POST /tsa), with /healthz, /certs and Prometheus /metrics.
    Serve(ServeArgs),
    /// Make a key pair inside the PKCS#11 token named in the config.
    Keygen(KeygenArgs),
    /// Make a self-signed development certificate or a CSR for the TSA key.
    Cert(CertArgs),
    /// Client: hash a file, request a timestamp, check the reply, save the token.
    Request(RequestArgs),
    /// The TSA audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit log: no record removed or edited.
    Verify {
        /// Data directory of the TSA (holds `db/`).
        #[arg(long, default_value = "./hozon-data")]
        data: PathBuf,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Production configuration (hozon.toml).
    #[arg(long, conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Development mode: software key and self-signed development certificate created in
    /// --data on first run; clock synchronisation not required. Never for production.
    #[arg(long)]
    dev: bool,
    /// Listen address (overrides the config).
    #[arg(long)]
    listen: Option<String>,
    /// Metrics listen address (overrides the config); "none" disables it.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Data directory (overrides the config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain, PEM, leaf first (overrides `[tsa.tls]`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The HTTPS private key, PEM.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued under these CAs, PEM (mutual TLS; needs HTTPS).
    #[arg(long)]
    client_ca: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyType {
    Rsa2048,
    Rsa3072,
    P256,
    P384,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Configuration naming the PKCS#11 module, token, key label and PIN source.
    #[arg(long)]
    config: PathBuf,
    /// Key type.
    #[arg(long, value_enum, default_value = "rsa3072")]
    r#type: KeyType,
}

#[derive(Args)]
pub struct CertArgs {
    /// Configuration naming the key.
    #[arg(long)]
    config: PathBuf,
    /// Make a self-signed development certificate.
    #[arg(long, conflicts_with = "csr", required_unless_present = "csr")]
    self_signed: bool,
    /// Make a PKCS#10 request for a real CA.
    #[arg(long)]
    csr: bool,
    /// Common name of the TSA.
    #[arg(long, default_value = "hozon TSA")]
    cn: String,
    /// Organisation.
    #[arg(long, default_value = "hozon")]
    org: String,
    /// Validity of a self-signed certificate, days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Output PEM file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct RequestArgs {
    /// File to timestamp.
    file: PathBuf,
    /// TSA URL, e.g. http://127.0.0.1:3180/tsa
    #[arg(long)]
    url: String,
    /// Hash algorithm: sha256, sha384, sha512, sha3-256, sha3-512.
    #[arg(long, default_value = "sha256")]
    digest: String,
    /// Request this policy OID.
    #[arg(long)]
    policy: Option<String>,
    /// Ask for the TSA certificate in the token.
    #[arg(long)]
    cert_req: bool,
    /// TSA certificate(s), PEM, for checking the token when it carries none.
    #[arg(long)]
    tsa_cert: Vec<PathBuf>,
    /// Environment variable with a bearer token for the TSA.
    #[arg(long)]
    bearer_env: Option<String>,
    /// For an https URL: the CAs to trust for the TSA's certificate, PEM (default: the
    /// system bundle).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// For a TSA that requires client certificates: this client's chain, PEM.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Where to write the token (DER TimeStampToken).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: TsaCommand) -> Result<()> {
    match cmd {
        TsaCommand::Serve(a) => serve(a),
        TsaCommand::Keygen(a) => keygen(a),
        TsaCommand::Cert(a) => cert(a),
        TsaCommand::Request(a) => request(a),
        TsaCommand::Audit(AuditCommand::Verify { data }) => audit_verify(&data),
    }
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn open_store(data: &Path) -> Result<Arc<Store>> {
    if !data.exists() {
        std::fs::create_dir_all(data)
            .with_context(|| format!("creating data directory {}", data.display()))?;
    }
    Ok(Arc::new(Store::open(data.join("db"))?))
}

/// A TSA client's TLS settings from files: the CAs to trust for the TSA (default: the system
/// bundle) and this client's certificate chain and key. `None` when neither is given (an
/// `https` URL then uses the system bundle).
pub fn client_tls(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Option<hozon_tsa::tls::ClientConfig>> {
    if ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    let roots = read(ca.unwrap_or(hozon_tsa::tls::SYSTEM_ROOTS.as_ref()))?;
    let identity = identity
        .map(|(c, k)| Ok::<_, anyhow::Error>((read(c)?, read(k)?)))
        .transpose()?;
    Ok(Some(hozon_tsa::tls::client_config(
        &roots,
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )?))
}

fn protocol_config(s: &TsaSection) -> Result<TsaConfig> {
    let mut cfg = TsaConfig::default();
    if !s.policies.is_empty() {
        cfg.policies = s
            .policies
            .iter()
            .map(|p| parse_oid(p))
            .collect::<Result<Vec<_>>>()?;
        cfg.default_policy = cfg.policies[0].clone();
    }
    cfg.accepted_digests = s
        .digests
        .iter()
        .map(|d| parse_digest(d).ok_or_else(|| anyhow!("unknown digest {d:?} in [tsa] digests")))
        .collect::<Result<Vec<_>>>()?;
    cfg.accuracy = (s.accuracy_ms > 0).then_some(Accuracy {
        seconds: s.accuracy_ms / 1000,
        millis: (s.accuracy_ms % 1000) as u16,
        micros: 0,
    });
    cfg.precision = match s.precision.as_str() {
        "seconds" => TimePrecision::Seconds,
        "millis" => TimePrecision::Millis,
        "micros" => TimePrecision::Micros,
        other => bail!("[tsa] precision must be seconds, millis or micros, not {other:?}"),
    };
    cfg.ordering = s.ordering;
    cfg.include_tsa_name = s.include_tsa_name;
    cfg.include_signing_time = s.signing_time;
    Ok(cfg)
}

pub fn parse_oid(s: &str) -> Result<rasn::types::ObjectIdentifier> {
    let arcs = s
        .split('.')
        .map(|a| a.parse::<u32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow!("{s:?} is not a dotted OID"))?;
    rasn::types::ObjectIdentifier::new(arcs).ok_or_else(|| anyhow!("{s:?} is not a valid OID"))
}

pub(super) fn read_secret(
    env: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<Option<String>> {
    if let Some(path) = file {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("reading {what} from {}", path.display()))?;
        return Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()));
    }
    if let Some(var) = env {
        return std::env::var(var)
            .map(Some)
            .with_context(|| format!("{what}: environment variable {var} is not set"));
    }
    Ok(None)
}

fn read_pem_chain(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    let mut chain = Vec::new();
    for p in paths {
        let text = read(p)?;
        chain.extend(
            hozon_tsa::certgen::certificates_from_pem(&text)
                .with_context(|| format!("parsing {}", p.display()))?,
        );
    }
    if chain.is_empty() {
        bail!("no certificate found in [tsa] chain");
    }
    Ok(chain)
}

fn pkcs11_config(k: &KeySection) -> Result<hozon_tsa::pkcs11::Pkcs11Config> {
    let pin = match (&k.pin_file, &k.pin_env) {
        (Some(f), _) => hozon_tsa::pkcs11::pin_from_file(f)?,
        (None, Some(v)) => hozon_tsa::pkcs11::pin_from_env(v)?,
        (None, None) => {
            bail!("[tsa.key] needs pin_env or pin_file (the PIN is never read from argv)")
        }
    };
    let scheme = parse_scheme(&k.scheme)
        .ok_or_else(|| anyhow!("unknown [tsa.key] scheme {:?}", k.scheme))?;
    Ok(hozon_tsa::pkcs11::Pkcs11Config {
        module: k.module.clone(),
        token_label: k.token_label.clone(),
        key_label: k.key_label.clone(),
        key_id: k
            .key_id
            .as_deref()
            .map(hex::decode)
            .transpose()
            .context("[tsa.key] key_id is not hex")?,
        pin,
        scheme,
        sessions: k.sessions,
    })
}

fn pkcs11_signer(k: &KeySection) -> Result<Arc<dyn Signer>> {
    Ok(Arc::new(hozon_tsa::pkcs11::Pkcs11Signer::open(
        &pkcs11_config(k)?,
    )?))
}

fn key_signer(k: &KeySection) -> Result<Arc<dyn Signer>> {
    match k.backend.as_str() {
        "pkcs11" => pkcs11_signer(k),
        "software" => {
            let path = k
                .software_key
                .as_ref()
                .ok_or_else(|| anyhow!("[tsa.key] backend = \"software\" needs software_key"))?;
            tracing::warn!("software TSA key {}: DEVELOPMENT ONLY", path.display());
            let scheme = parse_scheme(&k.scheme)
                .ok_or_else(|| anyhow!("unknown [tsa.key] scheme {:?}", k.scheme))?;
            Ok(Arc::new(
                hozon_tsa::software::SoftwareSigner::load(path)?.with_scheme(scheme)?,
            ))
        }
        other => bail!("[tsa.key] backend must be \"pkcs11\" or \"software\", not {other:?}"),
    }
}

/// Development key and certificate in `data`, created on first run and reused after.
pub fn dev_key(data: &Path) -> Result<CertifiedSigner> {
    std::fs::create_dir_all(data)?;
    let key_path = data.join("tsa-dev-key.pem");
    let cert_path = data.join("tsa-dev-cert.pem");
    let scheme = hozon_tsa::signer::SignatureScheme::RsaPkcs1Sha256;
    let signer: Arc<dyn Signer> = if key_path.exists() {
        Arc::new(hozon_tsa::software::SoftwareSigner::load(&key_path)?.with_scheme(scheme)?)
    } else {
        eprintln!(
            "hozon: creating a DEVELOPMENT-ONLY TSA key in {}",
            key_path.display()
        );
        Arc::new(
            hozon_tsa::software::SoftwareSigner::generate_to_file(
                hozon_tsa::software::KeyKind::Rsa2048,
                &key_path,
            )?
            .with_scheme(scheme)?,
        )
    };
    if !cert_path.exists() {
        let der = hozon_tsa::certgen::self_signed_tsa_certificate(
            signer.as_ref(),
            &hozon_tsa::certgen::TsaCertParams {
                common_name: "hozon development TSA".into(),
                organization: "hozon".into(),
                validity_days: 3650,
                development: true,
            },
        )?;
        // Whole or not at all: a start killed here makes a new certificate next time
        // rather than leaving a truncated one that no later start could read.
        hozon_tsa::software::create_file_durably(
            &cert_path,
            hozon_tsa::certgen::certificate_pem(&der).as_bytes(),
            0o644,
        )
        .with_context(|| format!("writing {}", cert_path.display()))?;
    }
    let chain = read_pem_chain(&[cert_path])?;
    Ok(CertifiedSigner::new(signer, chain)?)
}

/// A TSA ready to serve: issuer, HTTP options and what the logs and gauges need.
pub struct Assembled {
    pub issuer: Arc<Issuer>,
    pub opts: hozon_tsa::http::HttpOptions,
    pub subject: String,
    pub not_after: std::time::SystemTime,
    pub store: Arc<Store>,
}

/// Build the TSA from its configuration section (or the development defaults).
pub fn assemble(section: &TsaSection, dev: bool) -> Result<Assembled> {
    let key = if dev {
        dev_key(&section.data)?
    } else {
        let signer = key_signer(&section.key)?;
        CertifiedSigner::new(signer, read_pem_chain(&section.chain)?)?
    };
    let cert_info = key.certificate_info()?;
    let store = open_store(&section.data)?;
    let chain_pem: String = key
        .chain()
        .iter()
        .map(|c| hozon_tsa::certgen::certificate_pem(c))
        .collect();
    let bearer = read_secret(
        &section.bearer_token_env,
        &section.bearer_token_file,
        "bearer token",
    )?;
    let clock = Clock::new(
        Box::new(KernelClock),
        ClockPolicy {
            require_sync: section.clock.require_sync && !dev,
            max_error: Duration::from_millis(section.clock.max_error_ms),
        },
    );
    if let Some((_, last)) = store.last::<AuditLog>()? {
        // Never issue earlier than the newest audited genTime, even across restarts.
        let (_, rec) = hozon_tsa::audit::decode_entry(&last)?;
        clock.set_floor(rec.gen_time);
    }
    let issuer = Arc::new(Issuer {
        config: protocol_config(section)?,
        serials: SerialAllocator::new(
            &store.instance_id()?,
            section.serial_block,
            Box::new(StoreCounter::new(store.clone())),
        ),
        audit: AuditWriter::start(Box::new(StoreAuditSink(store.clone())))?,
        clock,
        key,
    });
    Ok(Assembled {
        issuer,
        opts: hozon_tsa::http::HttpOptions {
            body_limit: section.body_limit,
            bearer_token: bearer,
            chain_pem,
        },
        subject: cert_info.subject.clone(),
        not_after: cert_info.not_after,
        store,
    })
}

fn serve(a: ServeArgs) -> Result<()> {
    let mut section = match &a.config {
        Some(p) => load_config(p)?.tsa,
        None if a.dev => TsaSection::default(),
        None => bail!("give --config FILE (production) or --dev (development key, no config)"),
    };
    if let Some(l) = a.listen {
        section.listen = l;
    }
    if let Some(m) = a.metrics_listen {
        section.metrics_listen = (m != "none").then_some(m);
    }
    if let Some(d) = a.data {
        section.data = d;
    } else if a.dev {
        section.data = PathBuf::from("./hozon-data");
    }
    match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => {
            section.tls = Some(TlsSection {
                cert,
                key,
                client_ca: a.client_ca,
            })
        }
        _ => {
            if let Some(ca) = a.client_ca {
                match &mut section.tls {
                    Some(tls) => tls.client_ca = Some(ca),
                    None => bail!("--client-ca needs HTTPS: give --tls-cert and --tls-key"),
                }
            }
        }
    }
    if a.dev {
        tracing::warn!("development mode: software key, clock synchronisation not required");
    }
    let tls = match &section.tls {
        Some(t) => Some(hozon_tsa::tls::server_config(
            &read(&t.cert)?,
            &read(&t.key)?,
            t.client_ca.as_deref().map(read).transpose()?.as_deref(),
        )?),
        None => None,
    };
    // Taken apart here so that nothing but `store` outlives the runtime: an async block
    // captures only the fields it uses, and a `tsa.store` left behind would keep the store
    // open past the check below.
    let Assembled {
        issuer,
        opts,
        subject,
        not_after,
        store,
    } = assemble(&section, a.dev)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async move {
        if let Some(m) = &section.metrics_listen {
            let addr: std::net::SocketAddr = m.parse().context("metrics_listen")?;
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
                    ],
                )?
                .install()
                .context("starting the metrics listener")?;
        }
        let gauges_issuer = issuer.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                hozon_tsa::http::record_gauges(&gauges_issuer, not_after);
            }
        });
        let listener = tokio::net::TcpListener::bind(&section.listen)
            .await
            .with_context(|| format!("binding {}", section.listen))?;
        let local = listener.local_addr()?;
        // The first line on stdout says where we listen (tests and scripts read it).
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("hozon tsa listening on {scheme}://{local}/tsa");
        tracing::info!(
            %local,
            tsa = %subject,
            serial_prefix = %issuer.serials.prefix_hex(),
            "TSA ready"
        );
        let app = hozon_tsa::http::router(issuer, opts);
        let how = hozon_tsa::http::Listening {
            tls,
            max_connections: section.max_connections,
        };
        hozon_tsa::http::serve_with(listener, app, how, shutdown_signal()).await?;
        tracing::info!("TSA stopped after finishing in-flight requests");
        Ok::<_, anyhow::Error>(())
    });
    // Dropping the runtime drops the tasks that still hold the issuer; the issuer's audit
    // writer joins its thread, so the store is closed here, on this thread, before exit.
    drop(rt);
    served?;
    store.flush()?;
    if Arc::strong_count(&store) > 1 {
        tracing::warn!("the store is still shared at shutdown");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

fn keygen(a: KeygenArgs) -> Result<()> {
    let cfg = load_config(&a.config)?;
    let k = &cfg.tsa.key;
    if k.backend != "pkcs11" {
        bail!(
            "keygen makes keys inside a PKCS#11 token; [tsa.key] backend is {:?}",
            k.backend
        );
    }
    let label = k
        .key_label
        .clone()
        .ok_or_else(|| anyhow!("[tsa.key] key_label is needed to name the new key"))?;
    let spec = match a.r#type {
        KeyType::Rsa2048 => hozon_tsa::pkcs11::KeySpec::Rsa2048,
        KeyType::Rsa3072 => hozon_tsa::pkcs11::KeySpec::Rsa3072,
        KeyType::P256 => hozon_tsa::pkcs11::KeySpec::EcP256,
        KeyType::P384 => hozon_tsa::pkcs11::KeySpec::EcP384,
    };
    let id = k
        .key_id
        .as_deref()
        .map(hex::decode)
        .transpose()
        .context("[tsa.key] key_id is not hex")?;
    let generated = hozon_tsa::pkcs11::keygen(&pkcs11_config(k)?, spec, &label, id.as_deref())?;
    println!(
        "generated {spec:?} key {:?} (id {}) in token {:?}; its scheme should be {:?}",
        generated.label,
        hex::encode(&generated.id),
        k.token_label,
        spec.default_scheme()
    );
    Ok(())
}

fn cert(a: CertArgs) -> Result<()> {
    let cfg = load_config(&a.config)?;
    let signer = key_signer(&cfg.tsa.key)?;
    let params = hozon_tsa::certgen::TsaCertParams {
        common_name: a.cn,
        organization: a.org,
        validity_days: a.days,
        // A self-signed TSA certificate is for development; its subject says so.
        development: a.self_signed,
    };
    let (tag, der) = if a.self_signed {
        (
            "CERTIFICATE",
            hozon_tsa::certgen::self_signed_tsa_certificate(signer.as_ref(), &params)?,
        )
    } else {
        (
            "CERTIFICATE REQUEST",
            hozon_tsa::certgen::tsa_csr(signer.as_ref(), &params)?,
        )
    };
    if a.out.exists() {
        bail!("{} exists; refusing to overwrite it", a.out.display());
    }
    std::fs::write(&a.out, hozon_tsa::certgen::to_pem(tag, &der))
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {} to {}", tag.to_lowercase(), a.out.display());
    Ok(())
}

fn request(a: RequestArgs) -> Result<()> {
    use hozon_tsa::client;
    let digest = parse_digest(&a.digest).ok_or_else(|| anyhow!("unknown digest {:?}", a.digest))?;
    let data = read(&a.file)?;
    let imprint = digest.digest(&data);
    let nonce = client::random_nonce();
    let policy = a.policy.as_deref().map(parse_oid).transpose()?;
    let req = client::build_request(digest, &imprint, Some(&nonce), policy.clone(), a.cert_req)?;
    let bearer = a
        .bearer_env
        .as_ref()
        .map(|v| std::env::var(v).with_context(|| format!("{v} is not set")))
        .transpose()?;
    let tls = client_tls(
        a.cacert.as_deref(),
        a.client_cert.as_deref().zip(a.client_key.as_deref()),
    )?;
    let reply = client::post(
        &a.url,
        &req,
        bearer.as_deref(),
        tls.as_ref(),
        Duration::from_secs(30),
    )?;
    let token = client::parse_response(&reply)?;
    let extra = if a.tsa_cert.is_empty() {
        Vec::new()
    } else {
        read_pem_chain(&a.tsa_cert)?
    };
    let v = hozon_verifier::token::verify_token(
        &token,
        Some((digest, imprint.as_slice())),
        Some(&client::nonce_content(&nonce)),
        &extra,
    )
    .context("the TSA's reply does not check out; no token saved")?;
    if let Some(p) = &policy {
        if &v.policy != p {
            bail!("token policy {} is not the requested {p}", v.policy);
        }
    }
    std::fs::write(&a.out, &token).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "token saved to {}: genTime {}, serial {}, policy {}, TSA {}",
        a.out.display(),
        v.gen_time_text,
        hex::encode(&v.serial),
        v.policy,
        v.tsa_subject
    );
    Ok(())
}

fn audit_verify(data: &Path) -> Result<()> {
    audit_report(&Store::open(data.join("db"))?)
}

/// Check the audit chain of an open store and say what was found.
pub fn audit_report(store: &Store) -> Result<()> {
    let snap = store.snapshot();
    let summary = verify_chain(snap.iter::<AuditLog>())?;
    println!(
        "audit log intact: {} records, head {}",
        summary.entries,
        hex::encode(summary.head)
    );
    Ok(())
}
