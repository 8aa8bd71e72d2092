from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.synthesize_mnist, out_paths=dict(snakemake.output.items()),
    n_train=snakemake.params.n_train, n_test=snakemake.params.n_test, seed=snakemake.params.seed)
