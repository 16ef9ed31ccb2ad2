//! `eks-sim`: run the simulator as a process for scripts and demos.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use eks_sim::{SimConfig, Simulator};

/// A local EKS control plane: EKS access-entry API, Kubernetes ConfigMap API over HTTPS, and the
/// authenticator's rules. Prints the endpoints as JSON on stdout, then serves until interrupted.
#[derive(Parser)]
#[command(name = "eks-sim", version)]
struct Args {
    /// Configuration file (YAML or JSON); see sim/README.md.
    #[arg(long)]
    config: PathBuf,
    /// Override the EKS API listen address (e.g. 127.0.0.1:4510).
    #[arg(long)]
    eks_listen: Option<String>,
    /// Override the STS endpoint (e.g. http://127.0.0.1:5000).
    #[arg(long)]
    sts_endpoint: Option<String>,
    /// Write one kubeconfig per cluster into this directory (exec plugin `aws eks get-token`).
    #[arg(long)]
    kubeconfig_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let mut config = SimConfig::from_yaml(&text)
        .with_context(|| format!("invalid configuration {}", args.config.display()))?;
    if let Some(l) = args.eks_listen {
        config.eks_listen = l;
    }
    if let Some(s) = args.sts_endpoint {
        config.sts.endpoint = Some(s);
    }
    let sim = Simulator::start(config).await?;
    let mut clusters = Vec::new();
    for c in sim.clusters() {
        let mut v = serde_json::to_value(c)?;
        if let Some(dir) = &args.kubeconfig_dir {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{}.kubeconfig", c.name));
            std::fs::write(&path, sim.kubeconfig(&c.name, None).unwrap_or_default())?;
            v["kubeconfig"] = path.display().to_string().into();
        }
        clusters.push(v);
    }
    println!(
        "{}",
        serde_json::json!({"eks_endpoint": sim.eks_endpoint(), "control": format!("{}/_sim/state", sim.eks_endpoint()), "clusters": clusters})
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
