//! placeholder (untracked)
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    List,
}
pub fn run(_c: PluginCommand) -> anyhow::Result<()> {
    Ok(())
}
