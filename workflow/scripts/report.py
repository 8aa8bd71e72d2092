from attention_clusters.report import report_step

from runner import run

run(snakemake, report_step)
