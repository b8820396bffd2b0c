from lorasweep.models.parity import compare

TRAINED = {"prompt_ids": [2, 105, 2364, 107, 500, 106, 107, 105, 4368, 107], "answer_ids": [126413, 106, 107],
           "label_ids": [126413]}


def test_identical_prompt_and_stop_at_answer_end():
    r = compare(TRAINED, list(TRAINED["prompt_ids"]), [106])
    assert r["ok"] and r["prompt_identical"] and r["answer_end_token"] == 106


def test_missing_bos_is_caught():
    r = compare(TRAINED, TRAINED["prompt_ids"][1:], [106])
    assert not r["ok"] and r["first_difference_at"] == 0


def test_extra_tokens_at_end_are_caught():
    r = compare(TRAINED, TRAINED["prompt_ids"] + [107], [106])
    assert not r["ok"] and r["first_difference_at"] == len(TRAINED["prompt_ids"])


def test_stop_token_not_requested_is_caught():
    r = compare(TRAINED, list(TRAINED["prompt_ids"]), [1])
    assert r["prompt_identical"] and not r["stops_at_answer_end"] and not r["ok"]
