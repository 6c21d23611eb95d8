//! `--windows-service`: the exporter as a Windows service. Part of the
//! binary (`mod service` in main.rs), Windows only.
//!
//! The service control manager (SCM) starts the binary with the command line
//! `sc.exe create` gave it (packaging/windows/install.ps1). [`run`] connects
//! to the SCM, which calls `service_main` on a thread of its dispatcher; that
//! reports Running and serves until the SCM's Stop or Shutdown, which stops
//! the server the way Ctrl+C does ([`crate::signals::request_stop`]). A
//! service has no console, so its log goes to `--log.file`.
//!
//! The argument handling and the error outside the SCM are unit-tested here;
//! tests/windows_service.rs runs the service under an SCM (Wine's, in CI).

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use clap::CommandFactory;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};

/// The name install.ps1 gives the service. The SCM tells a service that runs
/// in a process of its own by its process, so it works under another name.
const NAME: &str = "openclaw-gateway-exporter";

/// How long a stop may take, as told to the SCM: the 10 s the server gives
/// scrapes in flight (src/web/mod.rs, `SHUTDOWN_GRACE`), and some.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// winerror.h: the process was not started by the SCM.
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;

/// Reads the config and serves; on an error, the service's exit code (2 for
/// the config, 1 for the server, as the console's exit status) and why.
pub type Served = Result<(), (u32, anyhow::Error)>;
type Serve = Box<dyn FnOnce() -> Served + Send>;

/// The server, handed from [`run`] on the main thread to `service_main`.
static SERVE: Mutex<Option<Serve>> = Mutex::new(None);
/// The server failed; `service_main` logged why.
static FAILED: AtomicBool = AtomicBool::new(false);

// define_windows_service! expands to the `extern "system"` entry point the
// SCM calls, whose body is an unsafe call that reads the SCM's arguments.
// rustc does not report lints inside another crate's macro, but that is the
// unsafe code here, and the allow says so for this macro alone.
#[allow(unsafe_code)]
mod ffi {
    use super::{service_main, NAME};
    windows_service::define_windows_service!(ffi_service_main, service_main);

    /// Hand the thread to the SCM's dispatcher until the service stops.
    pub fn start() -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(NAME, ffi_service_main)
    }
}

/// `--windows-service` runs the server: with a subcommand it is a usage
/// error (exit 2), as `--config.check` with it is (clap's `conflicts_with`).
pub fn check_args(cli: &crate::Cli) -> Result<(), clap::Error> {
    match &cli.command {
        Some(_) if cli.windows_service => Err(crate::Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "--windows-service runs the server; it takes no subcommand (check, diagnose)",
        )),
        _ => Ok(()),
    }
}

/// Serve as the SCM's service until it stops it. Blocks until then.
pub fn run(serve: impl FnOnce() -> Served + Send + 'static) -> ExitCode {
    *SERVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(serve));
    // A panic's message goes to stderr, which a service does not have.
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!("{info}");
        print(info);
    }));
    match ffi::start() {
        Ok(()) if FAILED.load(Ordering::SeqCst) => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", dispatcher_error(e));
            ExitCode::FAILURE
        }
    }
}

fn dispatcher_error(e: windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io)
            if io.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) =>
        {
            format!(
                "--windows-service: not started by the service control manager; \
                 start the service (sc.exe start {NAME}, after packaging/windows/install.ps1), \
                 or run without --windows-service"
            )
        }
        windows_service::Error::Winapi(io) => {
            format!("cannot connect to the service control manager: {io}")
        }
        e => format!("cannot connect to the service control manager: {e}"),
    }
}

/// On the dispatcher's thread. `_arguments` are what `sc.exe start NAME ...`
/// adds; the flags are on the command line install.ps1 registered.
fn service_main(_arguments: Vec<OsString>) {
    let fail = || FAILED.store(true, Ordering::SeqCst);
    let Some(serve) = SERVE.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return fail();
    };
    // The handler reports StopPending through the handle `register` returns.
    let handle: Arc<OnceLock<ServiceStatusHandle>> = Arc::default();
    let for_handler = handle.clone();
    let on_control = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            tracing::info!("stop requested by the service control manager");
            if let Some(h) = for_handler.get() {
                report(h, ServiceState::StopPending, 0);
            }
            crate::signals::request_stop();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let h = match service_control_handler::register(NAME, on_control) {
        Ok(h) => *handle.get_or_init(|| h),
        Err(e) => {
            tracing::error!("cannot register with the service control manager: {e:#}");
            return fail();
        }
    };
    report(&h, ServiceState::Running, 0);
    let code = match serve() {
        Ok(()) => 0,
        Err((code, e)) => {
            fail();
            tracing::error!("{e:#}");
            code
        }
    };
    // The last thing done: the SCM may end the process once it is Stopped.
    report(&h, ServiceState::Stopped, code);
}

/// `code` 0, or a service-specific exit code: `sc.exe query` shows it, and
/// install.ps1's `sc.exe failureflag` makes it trigger the restart.
fn report(h: &ServiceStatusHandle, state: ServiceState, code: u32) {
    let status = ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: match code {
            0 => ServiceExitCode::NO_ERROR,
            n => ServiceExitCode::ServiceSpecific(n),
        },
        checkpoint: 0,
        wait_hint: if state == ServiceState::StopPending {
            STOP_WAIT
        } else {
            Duration::ZERO
        },
        process_id: None,
    };
    if let Err(e) = h.set_service_status(status) {
        tracing::warn!("cannot report {state:?} to the service control manager: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::*;
    use crate::Cli;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(
            std::iter::once("openclaw-gateway-exporter").chain(args.iter().copied()),
        )
    }

    #[test]
    fn install_ps1s_command_line_parses() {
        let cli = parse(&[
            "--windows-service",
            "--config.file",
            r"C:\ProgramData\openclaw-gateway-exporter\config.yml",
            "--log.file",
            r"C:\ProgramData\openclaw-gateway-exporter\exporter.log",
        ])
        .unwrap();
        assert!(cli.windows_service);
        assert_eq!(
            cli.log_file.unwrap().to_str(),
            Some(r"C:\ProgramData\openclaw-gateway-exporter\exporter.log")
        );
        assert!(check_args(&parse(&["--windows-service"]).unwrap()).is_ok());
    }

    #[test]
    fn off_unless_asked_for() {
        let cli = parse(&[]).unwrap();
        assert!(!cli.windows_service);
        assert!(cli.log_file.is_none());
    }

    #[test]
    fn with_a_subcommand_or_config_check_it_is_a_usage_error() {
        for sub in ["check", "diagnose"] {
            let e = check_args(&parse(&["--windows-service", sub]).unwrap()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("--windows-service"), "{e}");
            assert!(check_args(&parse(&[sub]).unwrap()).is_ok());
        }
        let e = parse(&["--windows-service", "--config.check"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    /// Run from a console, the dispatcher fails at once and the server
    /// never starts.
    #[test]
    fn outside_the_scm_it_fails_at_once_without_serving() {
        let served = Arc::new(AtomicBool::new(false));
        let s = served.clone();
        let code = run(move || {
            s.store(true, Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(code, ExitCode::FAILURE);
        assert!(!served.load(Ordering::SeqCst));
        let io = std::io::Error::from_raw_os_error(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT);
        let msg = dispatcher_error(windows_service::Error::Winapi(io));
        assert!(
            msg.contains("not started by the service control manager"),
            "{msg}"
        );
    }
}
