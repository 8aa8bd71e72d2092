from attention_clusters.inference import postprocess
from attention_clusters.rule_runner import run

run(
    snakemake,
    postprocess,
    logits_bin=snakemake.input.logits,
    labels_bin=snakemake.input.labels,
    timing_json=snakemake.input.timing,
    eval_predictions=snakemake.input.eval_predictions,
    out_json=snakemake.output[0],
)
