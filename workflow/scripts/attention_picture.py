from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.attention_picture,
    checkpoint=snakemake.input.checkpoint,
    features=snakemake.input.features,
    videos=snakemake.input.videos,
    frame_digits=snakemake.input.frame_digits,
    threads=snakemake.threads,
    out_png=snakemake.output.png,
    out_npz=snakemake.output.weights,
    **snakemake.params.settings,
)
