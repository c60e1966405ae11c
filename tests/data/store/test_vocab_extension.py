"""Vocabulary extension: the new tokenizer splits text as the old one did, then joins runs of
old tokens into new ones; it never changes an old id, and it refuses what it cannot extend."""

from pathlib import Path

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.data.store.vocab_extension import extend_vocabulary
from budgetlm.errors import UserError

ENGLISH = (Path(__file__).parents[3] / "README.md").read_text()
FRENCH = (
    "Le système de fichiers est monté au démarrage. Les options de montage sont décrites "
    "dans la page de manuel. Cette commande affiche les paramètres du noyau et leurs valeurs. "
    "L'utilisateur peut modifier la configuration réseau à l'aide de l'outil prévu à cet effet. "
) * 30


def expanded(ids, added):
    return [old for i in ids for old in added.get(i, [i])]


def check_extension(old: Tokenizer, texts: list[str], held_out: list[str], count: int):
    extension = extend_vocabulary(old, texts, count)
    new = extension.tokenizer
    assert 0 < len(extension.added) <= count
    assert list(extension.added) == list(range(extension.first_id, new.vocab_size))
    for text in held_out:
        before, after = old.encode(text), new.encode(text)
        assert expanded(after, extension.added) == before  # old tokens, some runs joined
        assert new.decode(after) == text
    for i in range(extension.first_id):  # every old id means what it meant
        assert new.token(i) == old.token(i)
    return extension


def test_a_budgetlm_tokenizer_keeps_its_tokenization_and_compresses_new_text():
    old = Tokenizer.train([ENGLISH] * 2, 400)
    extension = check_extension(old, [FRENCH], [FRENCH[:500] + " inédit", ENGLISH[:3000]], 60)
    assert len(extension.tokenizer.encode(FRENCH)) < 0.8 * len(old.encode(FRENCH))
    again = extend_vocabulary(old, [FRENCH], 60)  # the same text learns the same tokens
    assert again.tokenizer.fingerprint == extension.tokenizer.fingerprint


def test_a_hugging_face_tokenizer_with_bos_and_padding_keeps_its_ids(tmp_path):
    pytest.importorskip("transformers")
    from tests.conftest import write_hf_model

    write_hf_model(tmp_path / "llama", "llama3", texts=[ENGLISH] * 2)
    old = Tokenizer.load(tmp_path / "llama")
    extension = check_extension(old, [FRENCH], [FRENCH[:700], ENGLISH[:2000]], 40)
    assert extension.tokenizer.bos_id == old.bos_id and extension.tokenizer.eos_id == old.eos_id


def test_it_stops_when_no_pair_repeats_and_refuses_other_models():
    old = Tokenizer.train([ENGLISH], 300)
    assert extend_vocabulary(old, ["xq"], 10).added == {}
    with pytest.raises(UserError, match="positive number"):
        extend_vocabulary(old, [FRENCH], 0)
    hf = HFTokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="a"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(UserError, match="extends plain BPE tokenizers; this one is WordLevel"):
        extend_vocabulary(Tokenizer(hf), [FRENCH], 10)
