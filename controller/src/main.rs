//! `levee`: parse the command line, then either run the daemon or ask it something.

use std::{io::IsTerminal as _, process::ExitCode};

use clap::{
    Parser as _,
    error::{ContextKind, ErrorKind},
};
use levee::{
    cli::{self, Cli, Command},
    controller::Controller,
    server::{self, Listeners},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        Command::Run {
            config,
            ifaces,
            xdp_mode,
            metrics,
        } => run(cli.socket, config, ifaces, xdp_mode, metrics),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Completions { shell } => cli::completions(shell),
        Command::Man { dir } => cli::man_pages(&dir),
        command => cli::client(cli.socket, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A value the parsers refused is one line naming the argument and what is wrong; other
/// command-line errors (and --help) are clap's own.
fn clap_error(e: clap::Error) -> ExitCode {
    if e.kind() == ErrorKind::ValueValidation
        && let Some(arg) = e.get(ContextKind::InvalidArg)
        && let Some(source) = std::error::Error::source(&e)
    {
        let arg = arg.to_string();
        let name = arg.split(' ').next().unwrap_or(&arg);
        eprintln!("error: {name}: {source}");
        return ExitCode::FAILURE;
    }
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run(
    socket: Option<std::path::PathBuf>,
    config: Option<std::path::PathBuf>,
    ifaces: Vec<String>,
    xdp_mode: Option<levee::dataplane::AttachMode>,
    metrics: Option<cli::MetricsAddr>,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let settings = cli::run_settings(socket, config.as_ref(), &ifaces, xdp_mode, metrics)?;
    let control = server::bind_control_socket(&settings.daemon.socket)?;
    // Bound before anything is attached, so a taken port fails the start cleanly.
    let metrics = match settings.daemon.metrics {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let socket = settings.daemon.socket.clone();
    let controller = Controller::start(settings, config)?;
    let served = runtime.block_on(server::run(
        controller,
        Listeners { control, metrics },
        std::future::pending(),
    ));
    let _ = std::fs::remove_file(&socket);
    served
}
