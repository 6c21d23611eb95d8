// The one unsafe block is in alloc_tuning (glibc's mallopt and malloc_trim);
// the library denies unsafe code outside its OS bindings.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use openclaw_gateway_exporter::config::{self, GatewayFile, Intervals};
use openclaw_gateway_exporter::exporter::{Exporter, VERSION};
use openclaw_gateway_exporter::http::{self, AppState};
use openclaw_gateway_exporter::logging;
use openclaw_gateway_exporter::platform;
use openclaw_gateway_exporter::web::{self, ReloadOutcome, Web};

#[allow(unsafe_code)]
mod alloc_tuning;
#[cfg(windows)]
mod service;
mod signals;

/// Watches OpenClaw gateways from the outside and exposes Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "openclaw-gateway-exporter", version, long_version = LONG_VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Address to listen on; repeat for several. ":9789" means every interface.
    /// (`snapshot` asks the exporter running there for its series and probes.)
    #[arg(
        global = true,
        long = "web.listen-address",
        env = "OPENCLAW_EXPORTER_LISTEN_ADDRESS",
        default_value = ":9789",
        value_delimiter = ','
    )]
    listen_addresses: Vec<String>,
    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        env = "OPENCLAW_EXPORTER_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    telemetry_path: String,
    /// Web config file: TLS, basic auth and response headers, in the Prometheus exporter-toolkit format. Reloaded on SIGHUP (Unix; on Windows, a restart).
    #[arg(
        global = true,
        long = "web.config.file",
        env = "OPENCLAW_EXPORTER_WEB_CONFIG_FILE"
    )]
    web_config_file: Option<PathBuf>,
    /// Time a client has to finish the TLS handshake and send a request's headers (kept alive: to start its next request); a client that takes none of a response for this long is cut off too.
    #[arg(long = "web.client-timeout", default_value = "30s", value_parser = config::parse_duration)]
    client_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long = "web.max-connections", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_connections: u32,
    /// YAML config file (gateways and intervals).
    #[arg(
        global = true,
        long = "config.file",
        env = "OPENCLAW_EXPORTER_CONFIG_FILE"
    )]
    config_file: Option<PathBuf>,
    /// Validate the configuration, print it, and exit.
    #[arg(global = true, long = "config.check")]
    config_check: bool,

    /// Name (the `gateway` label) of the single default gateway.
    #[arg(global = true, long = "gateway.name")]
    gateway_name: Option<String>,
    /// URL of the single default gateway.
    #[arg(global = true, long = "gateway.url", env = "OPENCLAW_GATEWAY_URL")]
    gateway_url: Option<String>,
    /// Port the single default gateway listens on in its own network namespace, when the URL has another (a container's published port) [default: the URL's].
    #[arg(global = true, long = "gateway.listen-port")]
    gateway_listen_port: Option<u16>,
    /// State dir of the single default gateway [default: $OPENCLAW_STATE_DIR, else .openclaw in $OPENCLAW_HOME or the home dir, as the gateway].
    #[arg(global = true, long = "gateway.state-dir")]
    gateway_state_dir: Option<PathBuf>,
    /// Pid of the single default gateway, tried before any other discovery.
    #[arg(global = true, long = "gateway.pid")]
    gateway_pid: Option<u32>,
    /// Pid file of the single default gateway.
    #[arg(global = true, long = "gateway.pid-file")]
    gateway_pid_file: Option<PathBuf>,
    /// File holding the token of the single default gateway, sent to /readyz
    /// as a bearer token [default: $OPENCLAW_GATEWAY_TOKEN].
    #[arg(global = true, long = "gateway.token-file")]
    gateway_token_file: Option<PathBuf>,

    /// Memory limit of the single default gateway, e.g. 1GiB [default: cgroup, then --max-old-space-size, then host memory].
    #[arg(global = true, long = "gateway.memory-limit")]
    gateway_memory_limit: Option<String>,

    /// Log of the single default gateway: a file, or a folder of openclaw-YYYY-MM-DD.log files [default: /tmp/openclaw; %TEMP%\openclaw on Windows].
    #[arg(global = true, long = "gateway.log-path")]
    gateway_log_path: Option<PathBuf>,

    /// Memory (RSS) sampling interval [default: 30s].
    #[arg(global = true, long = "collect.memory.interval", value_parser = config::parse_duration)]
    memory_interval: Option<Duration>,
    /// Connections and process vitals sampling interval [default: 10s].
    #[arg(global = true, long = "collect.connections.interval", value_parser = config::parse_duration)]
    connections_interval: Option<Duration>,
    /// Response-time (liveness probe) interval [default: 10s].
    #[arg(global = true, long = "collect.latency.interval", value_parser = config::parse_duration)]
    latency_interval: Option<Duration>,
    /// Event-loop (readiness probe) window [default: 5s].
    #[arg(global = true, long = "collect.event-loop.interval", value_parser = config::parse_duration)]
    event_loop_interval: Option<Duration>,
    /// Error-rate window [default: 60s].
    #[arg(global = true, long = "collect.errors.interval", value_parser = config::parse_duration)]
    errors_interval: Option<Duration>,
    /// Log-following interval [default: 10s].
    #[arg(global = true, long = "collect.logs.interval", value_parser = config::parse_duration)]
    logs_interval: Option<Duration>,

    /// Time allowed for one probe: connect, answer and body [default: 5s].
    #[arg(global = true, long = "probe.timeout", value_parser = config::parse_duration)]
    probe_timeout: Option<Duration>,
    /// How often /readyz is polled; at most --collect.event-loop.interval [default: 1s].
    #[arg(global = true, long = "probe.readiness-interval", value_parser = config::parse_duration)]
    probe_readiness_interval: Option<Duration>,
    /// Liveness probes in a row that must time out or be refused, while the
    /// process lives and its port listens, to report the gateway hung [default: 2].
    #[arg(global = true, long = "probe.hang-after")]
    probe_hang_after: Option<u32>,
    /// How often the control plane is probed over WebSocket RPC (handshake
    /// and a health call), when the gateway has a token [default: 15s].
    #[arg(global = true, long = "probe.rpc-interval", value_parser = config::parse_duration)]
    probe_rpc_interval: Option<Duration>,
    /// Event-loop delay an idle gateway reports (its monitor's sampling period),
    /// exported for rules to subtract [default: 20ms].
    #[arg(global = true, long = "probe.event-loop-floor", value_parser = config::parse_duration)]
    probe_event_loop_floor: Option<Duration>,

    /// Folder of incident snapshots [default: incidents in the exporter's state dir; see docs/configuration.md].
    #[arg(
        global = true,
        long = "incident.dir",
        env = "OPENCLAW_EXPORTER_INCIDENT_DIR"
    )]
    incident_dir: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "log.level",
        env = "OPENCLAW_EXPORTER_LOG_LEVEL",
        default_value = "info"
    )]
    log_level: String,

    /// Log line format: logfmt or json.
    #[arg(
        long = "log.format",
        env = "OPENCLAW_EXPORTER_LOG_FORMAT",
        default_value = "logfmt",
        value_enum
    )]
    log_format: logging::Format,

    /// Append log lines to this file, making its folder if missing, instead
    /// of stderr. A Windows service has no console: it needs one.
    #[arg(long = "log.file", env = "OPENCLAW_EXPORTER_LOG_FILE")]
    log_file: Option<PathBuf>,

    /// Run as a Windows service, started and stopped by the service control
    /// manager (packaging/windows/install.ps1); a Stop ends it as Ctrl+C
    /// does. Give it --log.file: a service has no console.
    #[cfg(windows)]
    #[arg(long = "windows-service", conflicts_with = "config_check")]
    windows_service: bool,

    /// Which backend reads the OS: native (Linux: procfs, sock_diag, pidfd;
    /// macOS: libproc; Windows: Win32) or portable (sysinfo and the TCP
    /// table).
    /// Hidden: for tests and comparisons (DEVELOPERS.md).
    #[arg(
        global = true,
        long = "platform.backend",
        env = "OPENCLAW_EXPORTER_PLATFORM_BACKEND",
        default_value = "native",
        hide = true
    )]
    platform_backend: platform::Backend,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every collector once and print the field report's checklist, each
    /// line OK, WARN or CRIT, with what to do. Exit 0 OK, 1 WARN, 2 CRIT.
    Diagnose {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Fast liveness verdict for HEALTHCHECK, ExecStartPost and watchdogs:
    /// exit 0 when every gateway is found, listening, not hung and answers
    /// /healthz within --probe.timeout; 1 with a one-line reason otherwise.
    Check,
    /// Take an incident snapshot of a gateway now and print its folder. The
    /// exporter's series and last minute of probes come from the exporter
    /// running on --web.listen-address, else from a one-shot sample. Exit 0
    /// when a folder was written (its manifest.json lists what failed), 1
    /// otherwise.
    Snapshot {
        /// The gateway (its name); needed when several are configured.
        #[arg(long)]
        gateway: Option<String>,
    },
    /// The field report's standard recovery procedure (§5.1) on one gateway:
    /// snapshot, graceful stop, kill of its process tree, removal of its
    /// stale locks, start with --method, verify /readyz 200 with the event
    /// loop settled. Prints each step with its timing. Exit 0 only when the
    /// gateway is verified ready (or, with --dry-run, the plan is made); 1
    /// when a step failed; 2 when refused or misused.
    Recover(Box<RecoverArgs>),
}

#[derive(Debug, clap::Args)]
struct RecoverArgs {
    /// The gateway (its `gateway` label) [default: the only one configured].
    #[arg(long = "gateway")]
    gateway: Option<String>,
    /// How to start it: openclaw-cli, systemd, launchd, scheduled-task or argv [default: the gateway's `remediation:` method].
    #[arg(long, value_parser = ["openclaw-cli", "systemd", "launchd", "scheduled-task", "argv"])]
    method: Option<String>,
    /// argv: one argument of the command each; or give the command after `--`.
    #[arg(long = "argv", allow_hyphen_values = true)]
    argv: Vec<String>,
    #[arg(last = true, hide = true)]
    rest: Vec<String>,
    /// openclaw-cli: the OpenClaw CLI [default: openclaw].
    #[arg(long)]
    openclaw: Option<String>,
    /// systemd: the unit [default: openclaw-gateway.service].
    #[arg(long)]
    unit: Option<String>,
    /// systemd: a system unit, not a user one (`systemctl` without `--user`).
    #[arg(long)]
    system: bool,
    /// launchd: the LaunchAgent's label [default: ai.openclaw.gateway].
    #[arg(long)]
    label: Option<String>,
    /// launchd: the uid of its GUI domain [default: this process's].
    #[arg(long)]
    uid: Option<u32>,
    /// scheduled-task: the task's name [default: OpenClaw Gateway].
    #[arg(long)]
    task: Option<String>,
    /// Print what would be done; do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Time the gateway has to stop gracefully before it is killed [default: the `remediation:` block's, else 30s].
    #[arg(long, value_parser = config::parse_duration)]
    stop_timeout: Option<Duration>,
    /// Time the started gateway has to be verified ready [default: the `remediation:` block's, else 120s].
    #[arg(long, value_parser = config::parse_duration)]
    verify_timeout: Option<Duration>,
}

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("OCGX_REVISION"),
    ")"
);

fn main() -> ExitCode {
    let matches = collector_flags::get_matches(Cli::command());
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    #[cfg(windows)]
    if let Err(e) = service::check_args(&cli) {
        e.exit();
    }
    if let Err(e) = init_logging(
        &cli.log_level,
        cli.log_format,
        cli.log_file.as_deref(),
        cli.command.is_some(),
    ) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    // As a service, connect to the SCM before reading the config: a bad one
    // then stops the service with exit code 2 and the reason in the log, as
    // it exits 2 in a console, not a process that ends before the SCM hears
    // from it.
    #[cfg(windows)]
    if cli.windows_service {
        return service::run(move || {
            let config = load_config(&cli, &matches).map_err(|e| (2, e))?;
            let web = Web::load(cli.web_config_file.as_deref())
                .map_err(|e| (2, anyhow::anyhow!("{e}")))?;
            serve(cli, config, web).map_err(|e| (1, e))
        });
    }
    // With --log.file, a config error is in the log too, not only on stderr
    // (which a supervisor may drop).
    let config_error = |msg: String| {
        if cli.log_file.is_some() {
            tracing::error!("{msg}");
        }
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let config = match load_config(&cli, &matches) {
        Ok(c) => c,
        Err(e) => return config_error(format!("{e:#}")),
    };
    if let Some(Command::Diagnose { json }) = cli.command {
        let mut exporter = Exporter::with_platform(&config, platform::select(cli.platform_backend));
        let report = openclaw_gateway_exporter::diagnose::run(&mut exporter);
        if json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        } else {
            print!("{}", openclaw_gateway_exporter::diagnose::print(&report));
        }
        return ExitCode::from(report.exit_code());
    }
    if let Some(Command::Snapshot { gateway }) = &cli.command {
        let listen = cli.listen_addresses.first().map(String::as_str);
        return match openclaw_gateway_exporter::incident::command::run(
            &config,
            gateway.as_deref(),
            listen,
            platform::select(cli.platform_backend),
        ) {
            Ok(path) => {
                println!("{}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: incident snapshot not written: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Check) = cli.command {
        return run_check(&config, platform::select(cli.platform_backend));
    }
    if let Some(Command::Recover(args)) = &cli.command {
        let listen = cli.listen_addresses.first().map(String::as_str);
        return run_recover(
            &config,
            args,
            listen,
            platform::select(cli.platform_backend),
        );
    }
    let web = match Web::load(cli.web_config_file.as_deref()) {
        Ok(w) => w,
        Err(e) => return config_error(e.to_string()),
    };
    if cli.config_check {
        println!("config OK: {} gateway(s)", config.gateways.len());
        if let Some(f) = &config.discovery.fleet {
            println!(
                "  discovery fleet: {:?} every {:?}, cells under {}",
                f.command.join(" "),
                f.interval,
                f.state_dir.join("fleet/cells").display()
            );
        }
        if let Some(f) = &config.discovery.file_sd {
            for file in &f.files {
                println!(
                    "  discovery file_sd: {} checked every {:?}",
                    file.display(),
                    f.refresh_interval
                );
            }
        }
        for g in &config.gateways {
            println!(
                "  {}: url {} state dir {} token {}",
                g.name,
                g.url,
                g.state_dir.display(),
                if g.token.is_some() { "set" } else { "none" }
            );
        }
        return ExitCode::SUCCESS;
    }
    match serve(cli, config, web) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `recover`: the method from the flags, the steps printed as they end.
fn run_recover(
    config: &config::Config,
    args: &RecoverArgs,
    listen: Option<&str>,
    platform: std::sync::Arc<dyn platform::Platform>,
) -> ExitCode {
    use openclaw_gateway_exporter::remediation::recover;
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    let gateway = match &args.gateway {
        Some(name) => config.gateways.iter().find(|g| &g.name == name),
        None if config.gateways.len() == 1 => config.gateways.first(),
        None => return usage("--gateway: name one of the configured gateways".into()),
    };
    let Some(gateway) = gateway else {
        return usage(format!(
            "no gateway named {:?} is configured",
            args.gateway.as_deref().unwrap_or("")
        ));
    };
    let block = gateway.remediation.as_ref();
    let method = match (&args.method, block) {
        (Some(kind), _) => method_from_flags(kind, args),
        (None, Some(r)) if !has_method_flags(args) => Ok(r.method.clone()),
        (None, Some(_)) => Err("a method's flag needs --method".into()),
        (None, None) => Err(format!(
            "--method: gateway {:?} has no remediation block to take it from",
            gateway.name
        )),
    };
    let method = match method {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    let defaults = recover::RecoverOptions::default();
    let opts = recover::RecoverOptions {
        stop_timeout: args
            .stop_timeout
            .or(block.map(|r| r.stop_timeout))
            .unwrap_or(defaults.stop_timeout),
        start_timeout: block.map_or(defaults.start_timeout, |r| r.start_timeout),
        verify_timeout: args
            .verify_timeout
            .or(block.map(|r| r.verify_timeout))
            .unwrap_or(defaults.verify_timeout),
        dry_run: args.dry_run,
        probe_timeout: config.probe.timeout,
        platform: platform.clone(),
    };
    println!(
        "recover {}: method {}{}",
        gateway.name,
        method.kind(),
        if args.dry_run { " (dry run)" } else { "" }
    );
    let mut print = |s: &recover::Step| {
        let mark = if s.ok { "ok" } else { "FAILED" };
        println!(
            "  {:<8} {:>7.2} s  {:<6} {}",
            s.name,
            s.took.as_secs_f64(),
            mark,
            s.outcome
        );
    };
    // The incident snapshot, as the `snapshot` command takes it.
    let snapshot = || {
        openclaw_gateway_exporter::incident::command::run_for(
            config,
            Some(&gateway.name),
            listen,
            platform.clone(),
            "recover",
        )
        .map_err(|e| eprintln!("warning: incident snapshot not written: {e}"))
        .ok()
    };
    match recover::recover(gateway, &method, &opts, &snapshot, &mut print) {
        Ok(_) if args.dry_run => {
            println!("dry run: nothing was done");
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "recovered: gateway {} verified ready in {:.1} s",
                gateway.name,
                r.took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e @ recover::RecoverError::Refused(_)) => {
            println!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The `recover` flags as the config's `kind` and fields, so that the
/// defaults and the check of fields that do not belong to the method are
/// the config's.
fn method_from_flags(
    kind: &str,
    args: &RecoverArgs,
) -> Result<openclaw_gateway_exporter::remediation::method::Method, String> {
    let mut fields = serde_json::Map::new();
    fields.insert("kind".into(), kind.replace('-', "_").into());
    let argv: Vec<String> = args.argv.iter().chain(&args.rest).cloned().collect();
    let given = [
        ("argv", (!argv.is_empty()).then(|| argv.into())),
        ("command", args.openclaw.clone().map(|c| vec![c].into())),
        ("unit", args.unit.clone().map(Into::into)),
        ("user", args.system.then_some(false.into())),
        ("label", args.label.clone().map(Into::into)),
        ("uid", args.uid.map(Into::into)),
        ("name", args.task.clone().map(Into::into)),
    ];
    for (key, value) in given {
        if let Some(v) = value {
            fields.insert(key.into(), v);
        }
    }
    serde_json::from_value(fields.into())
        .map_err(|e| format!("--method {kind}: {e} (a flag of another method?)"))
}

fn has_method_flags(a: &RecoverArgs) -> bool {
    !a.argv.is_empty()
        || !a.rest.is_empty()
        || a.openclaw.is_some()
        || a.unit.is_some()
        || a.system
        || a.label.is_some()
        || a.uid.is_some()
        || a.task.is_some()
}

/// `one_shot`: `check` and `diagnose` print their own verdict on the gateway
/// process, so discovery's found/lost lines would only repeat it.
fn init_logging(
    level: &str,
    format: logging::Format,
    file: Option<&std::path::Path>,
    one_shot: bool,
) -> anyhow::Result<()> {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if one_shot {
        filter = filter.add_directive(
            "openclaw_gateway_exporter::discovery=off"
                .parse()
                .expect("a valid directive"),
        );
    }
    let writer = match file {
        Some(path) => BoxMakeWriter::new(logging::open_file(path)?),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(logging::Formatter(format))
        .init();
    Ok(())
}

fn from_command_line(m: &ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(ValueSource::CommandLine)
}

/// Merge the config file and the flags. Flags win; `--gateway.*` flags and a
/// file that lists gateways are mutually exclusive.
fn load_config(cli: &Cli, m: &ArgMatches) -> anyhow::Result<config::Config> {
    http::validate_telemetry_path(&cli.telemetry_path).map_err(anyhow::Error::msg)?;
    for a in &cli.listen_addresses {
        config::listen_addresses(a).map_err(anyhow::Error::msg)?;
    }
    let file = match &cli.config_file {
        Some(path) => config::read_file(path)?,
        None => Default::default(),
    };
    let mut intervals: Intervals = file.collect;
    for (flag, target) in [
        (cli.memory_interval, &mut intervals.memory),
        (cli.connections_interval, &mut intervals.connections),
        (cli.latency_interval, &mut intervals.latency),
        (cli.event_loop_interval, &mut intervals.event_loop),
        (cli.errors_interval, &mut intervals.errors),
        (cli.logs_interval, &mut intervals.logs),
    ] {
        if let Some(d) = flag {
            *target = d;
        }
    }
    let mut collectors = file.collectors;
    collector_flags::apply(m, &mut collectors);
    let mut probe = file.probe;
    for (flag, target) in [
        (cli.probe_timeout, &mut probe.timeout),
        (cli.probe_readiness_interval, &mut probe.readiness_interval),
        (cli.probe_rpc_interval, &mut probe.rpc_interval),
        (cli.probe_event_loop_floor, &mut probe.event_loop_floor),
    ] {
        if let Some(d) = flag {
            *target = d;
        }
    }
    if let Some(n) = cli.probe_hang_after {
        probe.hang_after = n;
    }
    let gateway_flags = [
        ("gateway_name", "--gateway.name"),
        ("gateway_url", "--gateway.url"),
        ("gateway_listen_port", "--gateway.listen-port"),
        ("gateway_state_dir", "--gateway.state-dir"),
        ("gateway_pid", "--gateway.pid"),
        ("gateway_pid_file", "--gateway.pid-file"),
        ("gateway_memory_limit", "--gateway.memory-limit"),
        ("gateway_log_path", "--gateway.log-path"),
        ("gateway_token_file", "--gateway.token-file"),
    ];
    // The token is read from the environment only: a flag would show it in `ps`.
    let env_token = std::env::var("OPENCLAW_GATEWAY_TOKEN")
        .ok()
        .and_then(|t| config::Token::new(&t));
    let discovery = config::discovery(file.discovery).context("invalid configuration")?;
    let incident = config::incident(file.incident, cli.incident_dir.clone())
        .context("invalid configuration")?;
    // With discovery on, the single default gateway is watched only when
    // a `--gateway.*` flag asks for it.
    let no_static = discovery.is_on()
        && file.gateways.is_empty()
        && !gateway_flags.iter().any(|(id, _)| from_command_line(m, id));
    let gateways = if file.gateways.is_empty() {
        vec![GatewayFile {
            name: cli.gateway_name.clone(),
            url: cli.gateway_url.clone(),
            listen_port: cli.gateway_listen_port,
            state_dir: cli.gateway_state_dir.clone(),
            pid: cli.gateway_pid,
            pid_file: cli.gateway_pid_file.clone(),
            process_title: None,
            memory_limit: cli.gateway_memory_limit.clone(),
            log_path: cli.gateway_log_path.clone(),
            token_file: cli.gateway_token_file.clone(),
            token: env_token,
            remediation: None,
        }]
    } else {
        if env_token.is_some() {
            tracing::warn!("OPENCLAW_GATEWAY_TOKEN is ignored because the config file lists gateways; give each gateway a token_file");
        }
        if let Some((_, flag)) = gateway_flags
            .iter()
            .find(|(id, _)| from_command_line(m, id))
        {
            anyhow::bail!(
                "{flag} configures the single default gateway, but the config file lists gateways; set it in the file instead"
            );
        }
        file.gateways
    };
    config::build_with_patterns(intervals, gateways, &file.log_patterns)
        .and_then(|c| c.with_probe(probe))
        .map(|c| config::Config {
            collectors,
            discovery,
            incident,
            gateways: if no_static { Vec::new() } else { c.gateways },
            remediation_state_file: file.remediation.state_file(),
            ..c
        })
        .context("invalid configuration")
}

/// `--collector.<name>` and `--no-collector.<name>` for every collector, as
/// node_exporter has them (kingpin's boolean flags): the last one given
/// wins, and flags win over the config file's `collectors:`.
mod collector_flags {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::{Arg, ArgAction, ArgMatches, Command};

    use openclaw_gateway_exporter::config::Collectors;

    /// Each collector with the ids (and long names) of the flags that turn
    /// it on and off. Made once; clap wants them `'static`.
    fn flags() -> &'static [(&'static str, &'static str, &'static str)] {
        static FLAGS: std::sync::OnceLock<Vec<(&str, &str, &str)>> = std::sync::OnceLock::new();
        FLAGS.get_or_init(|| {
            let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
            Collectors::NAMES
                .iter()
                .map(|&name| {
                    let on = leak(format!("collector.{name}"));
                    (name, on, leak(format!("no-{on}")))
                })
                .collect()
        })
    }

    /// Parse the command line with the collector flags added. An unknown
    /// collector is a usage error (exit 2) that lists the known ones.
    pub fn get_matches(cmd: Command) -> ArgMatches {
        let mut cmd = cmd.args(flags().iter().flat_map(|&(name, on, off)| {
            [
                Arg::new(on)
                    .long(on)
                    .global(true)
                    .action(ArgAction::SetTrue)
                    .overrides_with(off)
                    .help(format!(
                        "Enable the {name} collector [default: enabled]; --no-{on} disables it"
                    )),
                Arg::new(off)
                    .long(off)
                    .global(true)
                    .action(ArgAction::SetTrue)
                    .overrides_with(on)
                    .hide(true),
            ]
        }));
        let e = match cmd.try_get_matches_from_mut(std::env::args_os()) {
            Ok(m) => return m,
            Err(e) => e,
        };
        let unknown = match (e.kind(), e.get(ContextKind::InvalidArg)) {
            (ErrorKind::UnknownArgument, Some(ContextValue::String(arg))) => arg
                .strip_prefix("--collector.")
                .or_else(|| arg.strip_prefix("--no-collector."))
                .map(|name| {
                    (
                        arg.clone(),
                        name.split('=').next().unwrap_or(name).to_string(),
                    )
                }),
            _ => None,
        };
        match unknown {
            Some((arg, name)) => cmd
                .error(
                    ErrorKind::UnknownArgument,
                    format!(
                        "unknown collector {name:?} in '{arg}'; the collectors are {}",
                        Collectors::NAMES.join(", ")
                    ),
                )
                .exit(),
            None => e.exit(),
        }
    }

    /// Turn collectors on or off as the command line says.
    pub fn apply(m: &ArgMatches, collectors: &mut Collectors) {
        for &(name, on, off) in flags() {
            if let Some(switch) = collectors.switch(name) {
                if super::from_command_line(m, on) {
                    *switch = true;
                } else if super::from_command_line(m, off) {
                    *switch = false;
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn run_check(
    config: &config::Config,
    platform: std::sync::Arc<dyn platform::Platform>,
) -> ExitCode {
    let mut healthy = true;
    if config.gateways.is_empty() {
        println!("ok: no configured gateway; discovered gateways are watched by the server only");
    }
    for g in &config.gateways {
        match openclaw_gateway_exporter::check::check(g, config.probe.timeout, platform.clone())
            .await
        {
            Ok(line) => println!("ok {}: {line}", g.name),
            Err(reason) => {
                healthy = false;
                println!("FAIL {}: {reason}", g.name);
            }
        }
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The server's runtime (the collectors run on threads of their own). A
/// scrape is a read of the latest samples, so two workers serve it whatever
/// the number of cores or gateways. Its few blocking tasks (bcrypt, the
/// SIGHUP reload) share one pool thread, kept for an hour instead of 10 s: a
/// thread made anew costs a thread start, and each new thread may take a
/// fresh malloc arena, which grows RSS for no use.
fn serve(cli: Cli, config: config::Config, web: Web) -> anyhow::Result<()> {
    alloc_tuning::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .context("cannot start the runtime")?
        .block_on(serve_on_runtime(cli, config, web))
}

async fn serve_on_runtime(cli: Cli, config: config::Config, web: Web) -> anyhow::Result<()> {
    let mut exporter = Exporter::with_platform(&config, platform::select(cli.platform_backend));
    exporter.spawn();
    start_watchdog(&mut exporter, &config);
    let discovered = openclaw_gateway_exporter::sd::start(&config, exporter.view.clone());
    tokio::spawn(async {
        let mut every = tokio::time::interval(alloc_tuning::TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            alloc_tuning::trim();
        }
    });
    let web = std::sync::Arc::new(web);
    let app = web::wrap(
        http::app(AppState {
            discovered,
            ..AppState::new(&exporter, &cli.telemetry_path)
        }),
        web.clone(),
    );
    let limits = web::Limits {
        client_timeout: cli.client_timeout,
        max_connections: cli.max_connections as usize,
    };

    // Before "listening": a signal must never find its default action (exit).
    let (reload, shutdown) = signals::install()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for spec in &cli.listen_addresses {
        let listener = bind(spec).await?;
        let addr = listener.local_addr()?;
        tracing::info!(
            version = VERSION,
            gateways = config.gateways.len(),
            tls = web.is_tls(),
            basic_auth = !web.current().users.is_empty(),
            "listening on {}",
            web::url(addr, web.is_tls())
        );
        servers.spawn(web::serve(
            listener,
            app.clone(),
            web.clone(),
            limits,
            stopped.clone(),
        ));
    }
    tokio::spawn(reload_on_signal(reload, web));
    shutdown.recv().await;
    let _ = stop.send(true);
    while let Some(res) = servers.join_next().await {
        res.context("server task failed")?;
    }
    Ok(())
}

/// The watchdog, when some gateway has a `remediation:` block.
fn start_watchdog(exporter: &mut Exporter, config: &config::Config) {
    let snapshotter = exporter.snapshotter.clone();
    openclaw_gateway_exporter::remediation::runner::start(
        std::mem::take(&mut exporter.watched),
        openclaw_gateway_exporter::remediation::runner::Settings {
            state_file: config.remediation_state_file.clone(),
            probe_timeout: config.probe.timeout,
            snapshot: std::sync::Arc::new(move |gateway| {
                snapshotter
                    .take(gateway, "watchdog")
                    .map_err(|e| tracing::error!(gateway = %gateway.name, error = %e, "watchdog: no incident snapshot"))
                    .ok()
            }),
        },
    );
}

/// SIGHUP reloads the web config (Unix only: Windows has no such signal); a
/// broken file keeps the one in force.
async fn reload_on_signal(mut reload: signals::Reload, web: std::sync::Arc<Web>) {
    while reload.recv().await.is_some() {
        let w = web.clone();
        let outcome = tokio::task::spawn_blocking(move || w.reload()).await;
        match outcome {
            Ok(Ok(ReloadOutcome::Reloaded)) => tracing::info!("SIGHUP: web config reloaded"),
            Ok(Ok(ReloadOutcome::NoFile)) => {
                tracing::info!("SIGHUP: no --web.config.file to reload")
            }
            Ok(Err(e)) => tracing::error!("SIGHUP: web config not reloaded: {e}"),
            Err(e) => tracing::error!("SIGHUP: web config reload failed: {e}"),
        }
    }
}

/// Bind one listen address. ":port" tries the IPv6 wildcard (dual stack on
/// Linux) and falls back to IPv4.
async fn bind(spec: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in config::listen_addresses(spec).map_err(anyhow::Error::msg)? {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot listen on {spec}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}
