from attention_clusters.report import plot_curves
from attention_clusters.rule_runner import run

run(
    snakemake,
    plot_curves,
    history=snakemake.input.history,
    out=snakemake.output.png,
    **snakemake.params.settings,
)
