from attention_clusters.inference import preprocess
from attention_clusters.rule_runner import run

run(
    snakemake,
    preprocess,
    features_pkl=snakemake.input[0],
    features_bin=snakemake.output.features,
    labels_bin=snakemake.output.labels,
    **snakemake.params.settings,
)
