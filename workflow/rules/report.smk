# The aggregated report: results/report.md with its plots, built from every model's outputs.


rule attention_picture:
    input:
        checkpoint=picture_input("model.ckpt"),
        features="results/features/feature_test.pkl",
        videos="results/data/flash_test/videos.npy",
        frame_digits="results/data/flash_test/frame_digits.npy",
    output:
        png=report(
            "results/report/attention_fc{fc}.png",
            caption="../report/attention.rst",
            category="Attention",
            labels=picture_labels,
        ),
        weights="results/report/attention_fc{fc}.npz",
    log:
        "logs/attention_picture/fc{fc}.log",
    conda:
        "../envs/mindspore.yaml"
    threads: 1
    resources:
        **device_resources(DEVICES[0], "attention_picture", 2000),
    params:
        code=step_code("attention_picture"),
        upstream=lambda w: digest(SETTINGS.evaluated_lineage(*row_of(picture_model(w)))),
        settings=picture_settings,
    script:
        "../scripts/attention_picture.py"


rule plot_curves:
    input:
        history=f"{MODEL_DIR}/history.tsv",
    output:
        png=report(
            CURVE_PNG,
            caption="../report/curves.rst",
            category="Training curves",
            labels=MODEL_LABELS,
        ),
    log:
        "logs/plot_curves/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}.log",
    priority: RESULT_PRIORITY
    localrule: True
    conda:
        "../envs/mindspore.yaml"
    threads: 1
    params:
        code=step_code("plot_curves"),
        upstream=lambda w: digest(SETTINGS.model_lineage(*row_of(w))),
        settings=lambda w: {
            "device": w.device,
            "attention": w.attention,
            "fc": int(w.fc),
            "natt": int(w.natt),
            "seed": int(w.seed),
        },
    script:
        "../scripts/plot_curves.py"


rule report:
    input:
        metrics="results/metrics.tsv",
        histories=sweep_outputs(f"{MODEL_DIR}/history.tsv"),
        summaries=sweep_outputs(f"{MODEL_DIR}/train.json"),
        infer=sweep_outputs(f"{MODEL_DIR}/infer/metrics.json"),
        # per model: its row's training job (shared by the row's seeds)
        train_benchmarks=sweep_outputs(TRAIN_BENCHMARK),
        data_benchmarks=list(data_stage_benchmarks().values()),
        pictures=expand(
            "results/report/attention_fc{fc}.png",
            fc=sorted(SETTINGS.picture_models()),
        ),
        picture_predictions=[
            f"{MODEL_DIR}/test_predictions.npy".format(**model)
            for _, model in sorted(SETTINGS.picture_models().items())
        ],
        test_labels="results/data/flash_test/labels.npy",
        curves=sweep_outputs(CURVE_PNG),
    output:
        report=report(
            "results/report.md", caption="../report/report_md.rst", category="Report"
        ),
        accuracy=report(
            "results/report/top1_vs_natt.png",
            caption="../report/accuracy.rst",
            category="Accuracy",
            subcategory="All models",
        ),
    log:
        "logs/report.log",
    localrule: True
    conda:
        "../envs/mindspore.yaml"
    params:
        code=step_code("report"),
        upstream=digest(sweep_lineage()),
        models=SETTINGS.models(),
        devices=DEVICES,
        infer_device=config["inference"]["device"],
        # The report records the merged config (and the commit of the script's checkout).
        config=config,
        data_steps=list(data_stage_benchmarks()),
        picture_names=[
            SETTINGS.picture(model)["title"]
            for _, model in sorted(SETTINGS.picture_models().items())
        ],
    script:
        "../scripts/report.py"


# Where a run stands, while it runs or after it was interrupted (no inputs: it reads what exists):
#   make status   (snakemake results/run_status.md --nolock --forcerun run_status [--configfile ...]:
#   the target first, or --forcerun takes it for a rule name and the whole run is planned)
rule run_status:
    output:
        "results/run_status.md",
    log:
        "logs/run_status.log",
    localrule: True
    conda:
        "../envs/mindspore.yaml"
    params:
        **run_plan(),
    script:
        "../scripts/run_status.py"
