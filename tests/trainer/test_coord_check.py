"""Coordinate check: activation scales stay flat with width under μP (grow under SP), with depth under CompleteP."""

from __future__ import annotations

from automix.cli import main
from trainer.coord_check import coord_check, plot_coord_check, slopes, width_slopes

WIDTHS = [16, 32, 64]
STEPS = 3


def test_mup_activations_are_flat_in_width_and_sp_ones_grow(make_cfg, tmp_path):
    config = make_cfg(batch_size=4)
    config = config.model_copy(update={"model": config.model.model_copy(update={"base_width": 16}), "threads": 1})
    df = coord_check(config, WIDTHS, steps=STEPS, lr=1e-2)
    assert set(df.module) == {"wte", "blocks.0", "blocks.1", "lm_head"}
    assert len(df) == 2 * len(WIDTHS) * STEPS * 4

    slopes = width_slopes(df)
    trained = slopes[slopes.t > 1]  # t=1 is at init; the check is about what training does
    mup = trained[trained.parametrization == "mup"]
    sp = trained[trained.parametrization == "sp"]
    # Flat: a 4× wider μP model changes no activation scale by more than 2^(0.3·2) ≈ 1.5×.
    assert mup.slope.abs().max() < 0.3, mup
    # SP with Adam: the block outputs after a few steps grow at least like sqrt(width).
    last_blocks = sp[(sp.t == STEPS) & sp.module.str.startswith("blocks")]
    assert last_blocks.slope.min() > 0.5, last_blocks

    png = plot_coord_check(df, tmp_path / "coord.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_completep_stream_is_flat_in_depth_and_mup_one_grows(make_cfg, tmp_path):
    config = make_cfg(batch_size=4)
    model = config.model.model_copy(update={"width": 32, "base_width": 32, "base_depth": 2})
    df = coord_check(config.model_copy(update={"model": model, "threads": 1}), [2, 4, 8, 16], lr=3e-3, axis="depth")
    assert set(df.module) == {"wte", "blocks.last", "lm_head"} and set(df.parametrization) == {"completep", "mup"}

    fitted = slopes(df)
    # t=1 is at init and t=2 follows a step that moved only the zero-initialised readout
    stream = fitted[(fitted.t > 2) & (fitted.module == "blocks.last")].set_index(["parametrization", "t"]).slope
    # 1/m_L branches: an 8× deeper CompleteP model changes the stream's scale by less than 2^(0.3·3) ≈ 1.9×
    assert stream["completep"].abs().max() < 0.3, stream
    # μP: each of the L blocks adds an update of the same size, so the stream grows with depth
    assert stream["mup"].min() > 0.4, stream
    assert plot_coord_check(df, tmp_path / "depth.png").read_bytes()[:4] == b"\x89PNG"


def test_coord_check_cli_writes_the_plot_and_rejects_bad_widths(tiny, tmp_path, capsys):
    config = tmp_path / "study.yaml"
    config.write_text(
        f"study: cc\nwork_dir: {tmp_path / 'work'}\n"
        f"data: {{target: {tiny.target}, target_valid: {tiny.target_valid}, seq_len: 16, cache_dir: {tiny.cache}}}\n"
        "model: {base_width: 16, n_heads: 4}\noptim: {batch_size: 2}\nbudget: {unique_tokens: 500}\n"
    )
    assert main(["coord-check", str(config), "--widths", "16", "32", "--steps", "2"]) == 0
    assert (tmp_path / "work" / "coord_check" / "coord_check.png").is_file()
    assert "blocks.1" in capsys.readouterr().out
    assert main(["coord-check", str(config), "--widths", "16", "30"]) == 2  # 4 heads do not divide 30
    assert main(["coord-check", str(config), "--depths", "1", "2", "--steps", "2"]) == 0
    assert (tmp_path / "work" / "coord_check" / "coord_check_depth.png").is_file()
    assert "blocks.last" in capsys.readouterr().out
