from attention_clusters.run_status import run_status_step

from runner import run

run(snakemake, run_status_step)
