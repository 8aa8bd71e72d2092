from attention_clusters.report import write_report
from attention_clusters.rule_runner import run

inp, out, params = snakemake.input, snakemake.output, snakemake.params
models = [
    {"device": h.split("/")[2], "fc": int(h.split("/")[3].split("_")[0][2:]),
     "natt": int(h.split("/")[3].split("_")[1][4:]), "history": h, "infer_metrics": i, "train_benchmark": b,
     "curve_png": c, "infer_device": params.infer_device}
    for h, i, b, c in zip(inp.histories, inp.infer, inp.train_benchmarks, out.curves)
]
run(snakemake, write_report, metrics_tsv=inp.metrics, models=models,
    data_benchmarks=dict(zip(params.data_steps, inp.data_benchmarks)), devices=params.devices,
    out_md=out.report, accuracy_png=out.accuracy)
