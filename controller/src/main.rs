//! `levee`: parse the command line, then either run the daemon or ask it something.

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser as _;
use levee::{
    cli::{self, Cli, Command},
    daemon::{Daemon, bind_socket, serve},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            ifaces,
            xdp_mode,
            metrics,
        } => run(cli.socket, config, ifaces, xdp_mode, metrics),
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

fn run(
    socket: Option<std::path::PathBuf>,
    config: Option<std::path::PathBuf>,
    ifaces: Vec<String>,
    xdp_mode: Option<String>,
    metrics: Option<String>,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let settings = cli::run_settings(
        socket,
        config.as_ref(),
        &ifaces,
        xdp_mode.as_deref(),
        metrics.as_deref(),
    )?;
    let listener = bind_socket(&settings.socket)?;
    // Bound before anything is attached, so a taken port fails the start cleanly.
    let metrics_listener = match settings.metrics {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let daemon = Daemon::start(settings, config)?;
    runtime.block_on(serve(daemon, listener, metrics_listener))
}
