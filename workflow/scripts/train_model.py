from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.train_model,
    features=snakemake.input.features,
    threads=snakemake.threads,
    state_dir=snakemake.params.state_dir,
    worker_logs=snakemake.params.worker_logs,
    rule_log=snakemake.log[0],
    checkpoint_out=snakemake.output.checkpoint,
    history_out=snakemake.output.history,
    summary_out=snakemake.output.summary,
    **snakemake.params.settings,
)
