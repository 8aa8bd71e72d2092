from attention_clusters.report import plot_curves

from runner import run

run(snakemake, plot_curves)
