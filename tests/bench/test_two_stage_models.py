"""bench.two_stage_models: a tiny instance publishes two versions the chain answers with."""

import numpy as np

from bench.two_stage_models import build_platform_versions
from peppercorn.model_repository import ModelRepository
from serving.chain import recommend_chain


def test_a_tiny_instance_loads_and_the_chain_answers(tmp_path):
    built = build_platform_versions(tmp_path, users=50, items=40, seen_per_user=6)
    assert built["retrieval"] == ("two_tower", 1) and built["ranker"] == ("neumf", 1)
    assert set(built["sizes_mb"]) == {"two_tower", "neumf"} and built["build_seconds"] >= 0
    repo = ModelRepository(str(tmp_path))
    retrieval = repo.version("two_tower").open()
    ranker = repo.version("neumf").open()
    assert retrieval.retrieval is not None and ranker.retrieval is None
    assert retrieval.users.tokens[:2] == ["<unk>", "u0000001"] and len(retrieval.users) == 51
    assert retrieval.items.tokens == ranker.items.tokens and ranker.items.raw(40) == "r000040"
    # Seen: sorted, distinct, about 6 a user; history: the same items, at most L = 20.
    seen = [retrieval.seen(u) for u in range(1, 51)]
    assert all(s.size and (np.diff(s) > 0).all() for s in seen)
    assert 3 <= np.mean([s.size for s in seen]) <= 9
    rows = retrieval.history_rows(np.arange(1, 51))
    assert rows.shape == (50, 20)
    assert all(set(r[r > 0]) == set(s) for r, s in zip(rows, seen, strict=True))
    answer = recommend_chain(retrieval, ranker, "u0000001", 5, 10)
    assert len(answer.items) == 5
    assert not {raw for raw, _ in answer.items} & {f"r{i:06d}" for i in retrieval.seen(1)}


def test_another_ranker_with_a_history_input_gets_the_history(tmp_path):
    built = build_platform_versions(tmp_path, users=30, items=25, ranker="fism", seed=1)
    ranker = ModelRepository(str(tmp_path)).version(built["ranker"][0]).open()
    assert ranker.history_length == 20 and ranker.feature_spec["history_length"] == 20
