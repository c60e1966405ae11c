from budgetlm.data.prepare.cache import cache_key, prepare_cached


def test_cache_is_reused_and_invalidated_by_changes(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"d{i}.txt").write_text(f"document number {i} " * 50)
    sources = [f"text={corpus}"]
    logs = []
    first = prepare_cached(sources, 300, 0.25, "text", 0, tmp_path / "cache", logs.append)
    again = prepare_cached(sources, 300, 0.25, "text", 0, tmp_path / "cache", logs.append)
    assert first == again and any("using prepared data" in m for m in logs)
    key = cache_key(sources, 300, 0.25, "text", 0)
    assert cache_key(sources, 512, 0.25, "text", 0) != key
    (corpus / "d0.txt").write_text("changed " * 60)
    assert cache_key(sources, 300, 0.25, "text", 0) != key
