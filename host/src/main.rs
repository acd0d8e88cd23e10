fn main() -> anyhow::Result<()> {
    vila2::cli::main()
}
