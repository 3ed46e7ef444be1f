"""Each reader on small files written by the test, including the format quirks and malformed input."""
from __future__ import annotations

import pytest

from core.errors import DataError
from tasks.readers import READERS, read_file
from tasks.types import SequenceExample, TokenExample


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_sib200_labels_with_slash_and_unquoted_text(tmp_path):
    p = write(tmp_path, "train.tsv", 'index_id\tcategory\ttext\n'
              '1\tscience/technology\t"Quoted" start, with, commas\n'
              '2\ttravel\tPlain sentence.\n')
    assert read_file("sib200_tsv", p) == [
        SequenceExample('"Quoted" start, with, commas', "science/technology"),
        SequenceExample("Plain sentence.", "travel"),
    ]


def test_sib200_bad_header_and_bad_row_name_file_and_line(tmp_path):
    p = write(tmp_path, "bad.tsv", "id\tlabel\ttext\n")
    with pytest.raises(DataError, match=r"bad\.tsv:1: expected the header"):
        read_file("sib200_tsv", p)
    p = write(tmp_path, "bad2.tsv", "index_id\tcategory\ttext\n1\ttravel\tok\n2\tonly two\n")
    with pytest.raises(DataError, match=r"bad2\.tsv:3: expected 3 tab-separated fields"):
        read_file("sib200_tsv", p)


CONLLU = """\
# sent_id = 1
# text = Aby sme šli.
1-2\tAby\t_\t_\t_\t_\t_\t_\t_\t_
1\tAby\taby\tSCONJ\t_\t_\t3\tmark\t_\t_
2\tsme\tbyť\tAUX\t_\t_\t3\taux\t_\t_
3\tšli\tísť\tVERB\t_\t_\t0\troot\t_\t_
3.1\tšli\tísť\tVERB\t_\t_\t_\t_\t0:root\t_
4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tÁno\táno\tPART\t_\t_\t0\troot\t_\tSpaceAfter=No
2\t#\t#\tSYM\t_\t_\t1\tpunct\t_\t_
"""


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    p = write(tmp_path, "x.conllu", CONLLU)  # the last sentence has no trailing blank line
    assert read_file("conllu_upos", p) == [
        TokenExample(("Aby", "sme", "šli", "."), ("SCONJ", "AUX", "VERB", "PUNCT")),
        TokenExample(("Áno", "#"), ("PART", "SYM")),
    ]


@pytest.mark.parametrize("line,problem", [
    ("1\tword\tlemma\tNOUN\n", "expected 10 tab-separated CoNLL-U columns, found 4"),
    ("1\tword\tw\t_\t_\t_\t0\troot\t_\t_\n", "missing UPOS tag"),
    ("2\tword\tw\tNOUN\t_\t_\t0\troot\t_\t_\n", "word id 2 out of sequence"),
])
def test_conllu_malformed(tmp_path, line, problem):
    p = write(tmp_path, "bad.conllu", "# text = x\n" + line)
    with pytest.raises(DataError, match=rf"bad\.conllu:2: {problem}"):
        read_file("conllu_upos", p)


def test_two_column_blank_line_breaks_and_hash_token(tmp_path):
    p = write(tmp_path, "train.txt", "Olu B-PER\nya O\n\n\n# O\nKano B-LOC\n\n")
    assert read_file("two_column", p) == [
        TokenExample(("Olu", "ya"), ("B-PER", "O")),
        TokenExample(("#", "Kano"), ("O", "B-LOC")),
    ]


def test_two_column_rejects_one_or_three_columns(tmp_path):
    p = write(tmp_path, "bad.txt", "Olu B-PER\nya\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 2 space-separated columns"):
        read_file("two_column", p)
    p = write(tmp_path, "bad3.txt", "a O\n\nb c O\n")
    with pytest.raises(DataError, match=r"bad3\.txt:3: expected 2"):
        read_file("two_column", p)


def test_uner_iob2_tabs_and_comments(tmp_path):
    p = write(tmp_path, "x.iob2", "# sent_id = a\n# text = Ján v Nitre\n1\tJán\tB-PER\t-\t-\n2\tv\tO\t-\t-\n"
              "3\tNitre\tB-LOC\t-\t-\n\n# sent_id = b\n1\tAno ano\tO\t-\t-\n")
    assert read_file("uner_iob2", p) == [
        TokenExample(("Ján", "v", "Nitre"), ("B-PER", "O", "B-LOC")),
        TokenExample(("Ano ano",), ("O",)),  # tab-separated: a token may hold a space
    ]
    bad = write(tmp_path, "bad.iob2", "1\tJán\tB-PER\t-\t-\n3\tv\tO\t-\t-\n")
    with pytest.raises(DataError, match=r"bad\.iob2:2: token id '3' out of sequence"):
        read_file("uner_iob2", bad)


def test_afrisenti_header_and_leading_quote_kept(tmp_path):
    p = write(tmp_path, "train.tsv", 'tweet\tlabel\n"Yes it is good\tpositive\nba kyau\tnegative\n')
    assert read_file("afrisenti_tsv", p) == [SequenceExample('"Yes it is good', "positive"),
                                             SequenceExample("ba kyau", "negative")]
    bad = write(tmp_path, "bad.tsv", "tweet\tlabel\nno label here\n")
    with pytest.raises(DataError, match=r"bad\.tsv:2: expected 2 tab-separated fields"):
        read_file("afrisenti_tsv", bad)


def test_headerless_csv_quoting_and_label_map(tmp_path):
    p = write(tmp_path, "train.csv", '1,"Tajjeb, ħafna"\n0,Ħażin\n1,"multi\nline"\n')
    got = read_file("headerless_csv", p, label_map={"0": "negative", "1": "positive"})
    assert got == [SequenceExample("Tajjeb, ħafna", "positive"), SequenceExample("Ħażin", "negative"),
                   SequenceExample("multi\nline", "positive")]
    assert read_file("headerless_csv", p)[1].label == "0"  # no map: labels as in the file


def test_headerless_csv_unknown_label_names_line(tmp_path):
    p = write(tmp_path, "korpus.csv", 'positiivne,Hea\nneutraalne,"x"\nvastuoluline,Segane\n')
    with pytest.raises(DataError, match=r"korpus\.csv:3: unknown label 'vastuoluline'"):
        read_file("headerless_csv", p, label_map={"positiivne": "positive", "neutraalne": "neutral"})


def test_invalid_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("a O\n".encode() + "ž O\n".encode("cp1250"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: invalid UTF-8"):
        read_file("two_column", p)


def test_unknown_reader_did_you_mean():
    from core.errors import UserError
    with pytest.raises(UserError, match=r"unknown reader 'two_columns' \(did you mean 'two_column'"):
        READERS.get("two_columns")


def test_json_records_list_and_lines_by_field_names(tmp_path):
    import json

    tweets = tmp_path / "tweets.json"
    tweets.write_text(json.dumps([{"id": 1, "tweet": {"text": " Habari "}, "sentiment": "pos"},
                                  {"id": 2, "tweet": {"text": "Mbaya"}, "sentiment": "neg"}]))
    got = read_file("json_records", tweets, text_field="tweet.text", label_field="sentiment",
                    label_map={"pos": "positive", "neg": "negative"})
    assert got == [SequenceExample("Habari", "positive"), SequenceExample("Mbaya", "negative")]
    lines = tmp_path / "pos.jsonl"
    lines.write_text('{"w": ["il", "kelb"], "t": ["DET", "NOUN"]}\n\n{"w": ["x"], "t": []}\n')
    with pytest.raises(DataError, match=r"pos\.jsonl:3: no value for t"):
        read_file("json_records", lines, tokens_field="w", tags_field="t")
    lines.write_text('{"w": ["il", "kelb"], "t": ["DET", "NOUN"]}\n')
    assert read_file("json_records", lines, tokens_field="w", tags_field="t") == [
        TokenExample(("il", "kelb"), ("DET", "NOUN"))]
    with pytest.raises(DataError, match=r"tweets\.json:record 1: unknown label 'neg'"):
        read_file("json_records", tweets, text_field="tweet.text", label_field="sentiment",
                  label_map={"pos": "positive"})
