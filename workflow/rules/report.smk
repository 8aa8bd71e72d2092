# The aggregated report: results/report.md with its plots, built from every model's outputs.


rule report:
    input:
        metrics="results/metrics.tsv",
        histories=sweep_outputs(f"{MODEL_DIR}/history.tsv"),
        infer=sweep_outputs(f"{MODEL_DIR}/infer/metrics.json"),
        train_benchmarks=sweep_outputs(
            "results/benchmarks/train_model/{device}/fc{fc}_natt{natt}.tsv"
        ),
        data_benchmarks=list(data_stage_benchmarks().values()),
    output:
        report=report(
            "results/report.md", caption="../report/report_md.rst", category="Report"
        ),
        accuracy=report(
            "results/report/top1_vs_natt.png",
            caption="../report/accuracy.rst",
            category="Accuracy",
        ),
        curves=report(
            sweep_outputs("results/report/curves/{device}_fc{fc}_natt{natt}.png"),
            caption="../report/curves.rst",
            category="Training curves",
        ),
    params:
        devices=DEVICES,
        infer_device=config["inference"]["device"],
        data_steps=list(data_stage_benchmarks()),
    log:
        "logs/report.log",
    localrule: True
    conda:
        "../envs/mindspore.yaml"
    script:
        "../scripts/report.py"
