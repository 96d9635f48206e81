from housing_mlops.pipeline.dag import ORDER, STEPS, closure


def test_closure_adds_upstreams_in_order() -> None:
    assert closure(["split"]) == ["ingest", "split"]
    assert closure(["ingest"]) == ["ingest"]
    assert closure(list(reversed(ORDER))) == list(ORDER)


def test_every_upstream_precedes_its_step() -> None:
    for index, name in enumerate(ORDER):
        assert all(ORDER.index(up) < index for up in STEPS[name].upstream)
