"""Windowed sources: the memory holds every source sub-word once, in order, and equals the plain
encoding when the source fits one window."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModel, AutoTokenizer

from bertkit.data.windows import Template
from bertkit.tasks.seq2seq.encoding import encode_sources, layout_sources

# [CLS]=101 A [SEP]=102, as BERT's
TEMPLATE = Template(([101], [102]), ([101], [102], [102]), (0, 0, 0, 1, 1))


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=5),
    budget=st.integers(2, 20),
    stride_share=st.floats(0, 0.9),
    multiple=st.sampled_from([1, 8]),
)
def test_the_memory_is_every_source_sub_word_once_in_order(lengths, budget, stride_share, multiple):
    stride = min(int(budget * stride_share), budget - 1)
    sources = [[1000 * (r + 1) + i for i in range(n)] for r, n in enumerate(lengths)]
    layout = layout_sources(sources, TEMPLATE, budget, stride)
    batch = layout.tensors(pad_id=0, multiple=multiple, window=budget + 2)
    width, memory_width = batch["input_ids"].shape[1], batch["memory_mask"].shape[1]
    longest, longest_memory = max(map(len, layout.windows)), max(map(len, layout.rows))
    # padded, by at most an eighth of the longest row, never past the window
    assert longest <= width <= min(longest + longest // 8, budget + 2)
    assert longest_memory <= memory_width <= longest_memory + longest_memory // 8
    flat = batch["input_ids"].flatten()
    for row, ids in enumerate(sources):
        n = int(batch["memory_mask"][row].sum())
        memory = flat[batch["memory_index"][row, :n]].tolist()
        assert memory == [101, *ids, 102]


def test_a_source_that_fits_is_encoded_as_one_plain_window(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoder = AutoModel.from_pretrained(tiny_bert).eval()
    template = Template.of(tokenizer)
    texts = ["alice went to paris", "bob saw the big old city of lima today and then went home"]
    sources = tokenizer(texts, add_special_tokens=False)["input_ids"]
    wrapper = torch.nn.Module()
    wrapper.encoder = encoder
    with torch.no_grad():
        batch = layout_sources(sources, template, 60, 16).tensors(tokenizer.pad_token_id)
        memory, mask = encode_sources(wrapper, batch)
        for row, text in enumerate(texts):
            plain = encoder(**tokenizer([text], return_tensors="pt")).last_hidden_state[0]
            n = int(mask[row].sum())
            assert n == len(plain)
            torch.testing.assert_close(memory.last_hidden_state[row, :n], plain, atol=1e-5, rtol=1e-5)


def test_a_long_source_is_read_in_windows_each_sub_word_from_its_best_window(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoder = AutoModel.from_pretrained(tiny_bert).eval()
    wrapper = torch.nn.Module()
    wrapper.encoder = encoder
    text = " ".join(["alice went to paris and bob saw lima"] * 6)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    layout = layout_sources([ids], Template.of(tokenizer), 12, 4)
    assert len(layout.windows) > 3
    with torch.no_grad():
        memory, mask = encode_sources(wrapper, layout.tensors(tokenizer.pad_token_id))
    assert int(mask.sum()) == len(ids) + 2
    # the sub-word in the middle of the second window is that window's state at that column
    window = torch.tensor([layout.windows[1]])
    with torch.no_grad():
        second = encoder(input_ids=window).last_hidden_state[0]
    position = layout.rows[0].index(1) + 3  # the 4th memory position taken from window 1
    column = layout.columns[0][position]
    torch.testing.assert_close(memory.last_hidden_state[0, position], second[column])
