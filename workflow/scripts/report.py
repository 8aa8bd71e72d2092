from attention_clusters.report import write_report
from attention_clusters.rule_runner import run

inp, out, params = snakemake.input, snakemake.output, snakemake.params
models = [
    {
        **model,
        "history": history,
        "infer_metrics": infer,
        "train_benchmark": benchmark,
        "curve_png": curve,
        "summary": summary,
        "infer_device": params.infer_device,
    }
    for model, history, infer, benchmark, curve, summary in zip(
        params.models, inp.histories, inp.infer, inp.train_benchmarks, inp.curves, inp.summaries, strict=True
    )
]
pictures = [
    {"name": name, "png": png, "predictions": predictions}
    for name, png, predictions in zip(
        params.picture_names, inp.pictures, inp.picture_predictions, strict=True
    )
]
run(
    snakemake,
    write_report,
    metrics_tsv=inp.metrics,
    models=models,
    data_benchmarks=dict(zip(params.data_steps, inp.data_benchmarks, strict=True)),
    devices=params.devices,
    out_md=out.report,
    accuracy_png=out.accuracy,
    pictures=pictures,
    test_labels=inp.test_labels,
    config=params.config,
    repository=snakemake.scriptdir,
)
