from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.train_extractor,
    train_images=snakemake.input.train_images,
    train_labels=snakemake.input.train_labels,
    test_images=snakemake.input.test_images,
    test_labels=snakemake.input.test_labels,
    threads=snakemake.threads,
    checkpoint_out=snakemake.output.checkpoint,
    metrics_out=snakemake.output.metrics,
    **snakemake.params.settings,
)
