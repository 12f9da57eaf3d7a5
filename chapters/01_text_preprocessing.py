# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Text preprocessing with NLTK
#
# Every language model starts by turning a string into a sequence of symbols, and the choices made there
# (what counts as a token, which forms are merged, which words are "unknown") decide what the model can ever
# see. In this chapter we compare tokenisers, train a sentence splitter, measure normalisation, check Zipf's and
# Heaps' laws on real corpora, and build the two vocabularies the rest of the book uses: a word `Vocab` and
# byte-pair encoding (BPE) from scratch, checked against Hugging Face `tokenizers`.

# %%
# In Colab (or any Jupyter without the book's environment), install lmlib
# (the book's library) at this book's release, with the extra that brings what the
# chapters import (NLTK, gensim, TensorFlow/Keras, myst-nb, pandas, scikit-learn).
import importlib.util
import subprocess
import sys

LMLIB = "lmlib[book] @ git+https://github.com/llm-principles/llm-book@v0.1.0"
if importlib.util.find_spec("lmlib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", LMLIB], check=True)

# %% [markdown]
# The setup cell imports what we need, seeds everything and shows the active profile. Only two settings change
# with the profile: how many Brown files train the sentence splitter and how many BPE merges we learn.

# %%
import re
import unicodedata
import warnings
from collections import Counter

# tqdm.auto warns without ipywidgets
warnings.filterwarnings("ignore", message="IProgress not found")
import matplotlib.pyplot as plt
import nltk
import numpy as np
import pandas as pd
from myst_nb import glue

from lmlib.data import fetch, require_nltk
from lmlib.plot import use_style
from lmlib.profiles import setup_chapter

cfg = setup_chapter(
    "01",
    quick=dict(punkt_train_files=300, bpe_merges=4000),
    full=dict(punkt_train_files=400, bpe_merges=8000),
)
use_style()
for resource in ("brown", "movie_reviews", "stopwords", "wordnet"):
    require_nltk(f"corpora/{resource}")
require_nltk("taggers/universal_tagset")
from nltk.corpus import brown, movie_reviews, stopwords, wordnet  # noqa: E402

# %% [markdown]
# ## Tokenisation
#
# A *tokeniser* maps a string to a sequence of tokens $x_{1:T}$; a language model then factorises the
# probability of that sequence with the chain rule,
#
# $$
# P(x_1,\dots,x_T) = \prod_{t=1}^{T} P(x_t \mid x_{<t}),
# $$ (eq-text-chain-rule)
#
# so the tokeniser fixes what a "step" $t$ is. For words there is no single right answer: is *didn't* one
# token or two, is *3.14* a number or three tokens, is a URL one token? We run five NLTK tokenisers
# {cite:p}`bird2009` on a paragraph written to be awkward.

# %%
tricky_text = (
    "Dr. O'Neil didn't pay $1,000 for the e-mail; he paid 3.14% less! "
    "See https://example.com/a?q=1 or write to j.doe@example.org :-) "
    "\"State-of-the-art,\" said @nlp_fan about #NLProc... Isn't it? I'd say so :D"
)

regexp_pattern = r"""(?x)
    https?://\S+                # URLs
  | [@#]\w+                     # @mentions and #hashtags
  | \$?\d+(?:[.,]\d+)*%?        # numbers, money, percentages: $1,000  3.14%
  | \w+(?:[-'.@]\w+)*           # inner - ' . @: e-mail, O'Neil, j.doe@example.org
  | [:;=][-^]?[()DPp]           # a few emoticons
  | \.\.\.                      # ellipsis
  | [^\w\s]                     # any other single punctuation mark
"""
tokenizers_to_compare = {
    "str.split": str.split,
    "RegexpTokenizer": nltk.RegexpTokenizer(regexp_pattern).tokenize,
    "word_tokenize (Treebank)": lambda s: nltk.word_tokenize(s, preserve_line=True),
    "TweetTokenizer": nltk.TweetTokenizer().tokenize,
    "wordpunct_tokenize": nltk.wordpunct_tokenize,
}
tokens_by_tokenizer = {
    name: fn(tricky_text) for name, fn in tokenizers_to_compare.items()
}
print(tokens_by_tokenizer["word_tokenize (Treebank)"])

# %% [markdown]
# To compare them compactly we look at how each one cut a few notable pieces of the paragraph: the tokens whose
# concatenation spells the piece, or the token that swallowed it together with a neighbour.

# %%
notable_cases = [
    "didn't",
    "$1,000",
    "3.14%",
    "https://example.com/a?q=1",
    ":-)",
    "@nlp_fan",
    "#NLProc",
    "State-of-the-art",
]


def show_case(tokens: list[str], case: str) -> str:
    """The tokens that spell `case` (joined by ' | '), or the token containing it."""
    quote_free = [t.replace("``", '"').replace("''", '"') for t in tokens]
    for i in range(len(quote_free)):
        for j in range(i + 1, min(i + 12, len(quote_free)) + 1):
            if "".join(quote_free[i:j]) == case:
                return " | ".join(tokens[i:j])
    return next((t for t in tokens if case in t), "?")

# %% [markdown]
# One row per tokeniser, with its number of tokens and its cut of each piece:

# %%
tokenizer_table = pd.DataFrame(
    [
        {
            "tokenizer": name,
            "#tokens": len(toks),
            **{case: show_case(toks, case) for case in notable_cases},
        }
        for name, toks in tokens_by_tokenizer.items()
    ]
)
for name, toks in tokens_by_tokenizer.items():
    glue(f"ntok_{name.split()[0].replace('.', '_')}", len(toks), display=False)
tokenizer_table

# %% [markdown]
# The same paragraph gives between {glue:text}`ntok_str_split` tokens (`str.split`, which leaves punctuation
# glued to words: *less!*, *"State-of-the-art,"*, *#NLProc...*) and
# {glue:text}`ntok_wordpunct_tokenize` tokens (`wordpunct_tokenize`, which cuts every run of punctuation, so
# *3.14* becomes three tokens and the URL falls apart). The Treebank rules of `word_tokenize`
# ({glue:text}`ntok_word_tokenize` tokens) split contractions into *did | n't*, the convention of the Penn
# Treebank, but break URLs and emoticons; `TweetTokenizer` ({glue:text}`ntok_TweetTokenizer` tokens) keeps
# emoticons, mentions, hashtags and URLs whole. A hand-written `RegexpTokenizer`
# ({glue:text}`ntok_RegexpTokenizer` tokens) does exactly what its pattern says, which is its strength and its
# maintenance cost. There is no best tokeniser, only one that matches the text and the downstream model.
#
# ## Sentence segmentation with Punkt
#
# A period ends a sentence, except after *Dr.*, *U.S.* or *3.* in a list. Punkt {cite:p}`kiss2006` learns
# this without labels: it finds *abbreviations* (types that occur with a final period much more often than
# without, are short and may contain inner periods), *collocations* across a period and *frequent sentence
# starters*, from raw text alone. NLTK ships pretrained English parameters (`nltk.download('punkt_tab')`, then
# `nltk.sent_tokenize(text)`) for readers online; they are not in this book's offline data mirror, so we train
# our own, which is the better lesson anyway.
#
# Brown {cite:p}`francis1979` is distributed tokenised, with gold sentence boundaries (`brown.sents`). We
# rebuild ordinary running text from it by joining each sentence's tokens with spaces and re-attaching
# punctuation (otherwise every sentence-final period would be a separate token and the task trivial), and
# record where each gold sentence starts.

# %%
def detokenize_brown(tokens: list[str]) -> str:
    """Brown tokens -> running text: attach punctuation, `` and '' become straight
    quotes."""
    text = " ".join(tokens)
    text = re.sub(r"`` ?", '"', text)
    text = re.sub(r" ?''", '"', text)
    text = re.sub(r" ([.,;:!?%)\]])", r"\1", text)
    return re.sub(r"([(\[$]) ", r"\1", text)


def brown_running_text(fileids: list[str]) -> tuple[str, list[int]]:
    """Running text of Brown files and the offset where each gold sentence starts."""
    sentences = [detokenize_brown(sent) for sent in brown.sents(fileids)]
    starts = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]]).tolist()
    return " ".join(sentences), starts

# %% [markdown]
# Brown has {glue:text}`brown_n_categories` categories (genres), from press reportage to fiction, and its
# files are ordered by category. We hold out every tenth file *of each category* (its first, eleventh, …) for
# evaluation ({glue:text}`punkt_eval_files` files), so that every genre is evaluated, and Punkt trains on
# {glue:text}`punkt_train_files` of the remaining {glue:text}`punkt_rest_files` files, spread evenly over the
# category-ordered list so that each category contributes its share. The two sets are disjoint.

# %%
def split_by_category(
    files_by_category: dict[str, list[str]], n_train: int, every: int = 10
) -> tuple[list[str], list[str]]:
    """(train, eval) files: every ``every``-th file of each category is held out;
    ``n_train`` of the others, evenly spaced over the category-ordered list, are for
    training."""
    eval_files = [f for files in files_by_category.values() for f in files[::every]]
    rest = [
        f
        for files in files_by_category.values()
        for i, f in enumerate(files)
        if i % every
    ]
    picks = np.linspace(0, len(rest) - 1, min(n_train, len(rest))).round().astype(int)
    return [rest[i] for i in picks], eval_files


files_by_category = {c: brown.fileids(categories=c) for c in brown.categories()}
train_files, eval_files = split_by_category(files_by_category, cfg.punkt_train_files)
category_of = {f: c for c, files in files_by_category.items() for f in files}
assert not set(train_files) & set(eval_files)
assert {category_of[f] for f in train_files} == set(files_by_category)  # every genre
glue("brown_n_categories", len(files_by_category), display=False)
glue("punkt_train_files", len(train_files), display=False)
glue("punkt_eval_files", len(eval_files), display=False)
glue("punkt_rest_files", len(brown.fileids()) - len(eval_files), display=False)
print(Counter(category_of[f] for f in train_files))

# %% [markdown]
# The running text of both sets, and the start of the evaluation text:

# %%
punkt_train_text, _ = brown_running_text(train_files)
punkt_eval_text, gold_starts = brown_running_text(eval_files)
print(
    f"train: {len(train_files)} files, {len(punkt_train_text):,} chars | "
    f"eval: {len(eval_files)} files, {len(punkt_eval_text):,} chars, "
    f"{len(gold_starts):,} sentences"
)
print(punkt_eval_text[:300])

# %% [markdown]
# Training is one call to `PunktTrainer.train`. `INCLUDE_ALL_COLLOCS` makes it consider every word pair
# across a period as a possible collocation, not only pairs whose first word is a number or an initial.

# %%
from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

punkt_trainer = PunktTrainer()
punkt_trainer.INCLUDE_ALL_COLLOCS = True
punkt_trainer.train(punkt_train_text, finalize=True)
punkt_params = punkt_trainer.get_params()
punkt = PunktSentenceTokenizer(punkt_params)
learned_abbrevs = sorted(punkt_params.abbrev_types)
glue("punkt_n_abbrevs", len(learned_abbrevs), display=False)
print(
    f"{len(learned_abbrevs)} abbreviations, {len(punkt_params.collocations)} "
    f"collocations, {len(punkt_params.sent_starters)} sentence starters"
)
print("a sample:", learned_abbrevs[:: max(1, len(learned_abbrevs) // 30)])

# %% [markdown]
# Two kinds of abbreviation, for the text below: titles, and abbreviations with inner periods.

# %%
assert {"mr", "dr"} <= set(learned_abbrevs)
title_abbrevs = set("mr mrs dr capt gen gov sen atty rev lt col prof sgt maj".split())
abbrev_kinds = {
    "titles": [a for a in learned_abbrevs if a in title_abbrevs],
    "dotted": [a for a in learned_abbrevs if "." in a],
}
for kind, examples in abbrev_kinds.items():
    assert len(examples) >= 3, kind
    glue(f"punkt_{kind}", ", ".join(examples[:3]), display=False)
    print(f"{kind}: {len(examples)}, e.g. {examples[:3]}")

# %% [markdown]
# We score *boundaries*: a predicted sentence start counts as correct when a gold sentence starts at the same
# character. With $\hat B$ the predicted and $B$ the gold boundaries,
#
# $$
# \mathrm{P} = \frac{|\hat B \cap B|}{|\hat B|},\qquad \mathrm{R} = \frac{|\hat B \cap B|}{|B|},\qquad
# \mathrm{F_1} = \frac{2\,\mathrm{P}\,\mathrm{R}}{\mathrm{P}+\mathrm{R}}.
# $$ (eq-text-boundary-f1)
#
# The baseline splits after `.`, `!` or `?` (and any closing quote) followed by whitespace and a capital.

# %%
def boundary_scores(predicted: set[int], gold: set[int]) -> dict[str, float]:
    """Precision, recall and F1 of predicted sentence starts against gold ones."""
    hits = len(predicted & gold)
    precision, recall = hits / len(predicted), hits / len(gold)
    return {
        "precision": precision,
        "recall": recall,
        "F1": 2 * precision * recall / (precision + recall),
    }


def naive_sentence_starts(text: str) -> set[int]:
    """Sentence starts of the regex baseline: after [.!?] (+ closing quotes), whitespace
    and a capital."""
    return {m.end() for m in re.finditer(r"[.!?][\"')]*\s+(?=[\"'(]?[A-Z])", text)}

# %% [markdown]
# Both splitters on the held-out files; the last column counts only the gold boundaries that follow `.`, `!`
# or `?`:

# %%
gold_boundaries = set(gold_starts[1:])
predicted = {
    "naive regex": naive_sentence_starts(punkt_eval_text),
    "Punkt (trained on Brown)": {s for s, _ in punkt.span_tokenize(punkt_eval_text)}
    - {0},
}
terminal_boundaries = {
    b
    for b in gold_boundaries
    if re.search(r"[.!?][\"')]*\s$", punkt_eval_text[b - 3 : b])
}
segmentation_table = pd.DataFrame(
    {
        method: {
            **boundary_scores(starts, gold_boundaries),
            "recall (after . ! ?)": len(starts & terminal_boundaries)
            / len(terminal_boundaries),
        }
        for method, starts in predicted.items()
    }
).T
segmentation_table.round(3)

# %% [markdown]
# The cell below checks the claims that the text makes about these numbers and glues them.

# %%
naive_row, punkt_row = segmentation_table.to_dict("records")
assert punkt_row["precision"] > naive_row["precision"]  # the text's claims
assert punkt_row["F1"] > naive_row["F1"]
false_splits = {m: len(starts - gold_boundaries) for m, starts in predicted.items()}
assert 2 * false_splits["Punkt (trained on Brown)"] < false_splits["naive regex"]
gain = {m: punkt_row[m] - naive_row[m] for m in ("precision", "recall")}
assert gain["precision"] > gain["recall"]  # "mainly in precision" (summary)
for key, row in (("naive", naive_row), ("punkt", punkt_row)):
    for metric in ("precision", "recall", "F1"):
        glue(f"seg_{key}_{metric}", float(row[metric]), display=False)
share = len(terminal_boundaries) / len(gold_boundaries)
glue("seg_terminal_share", share, display=False)

# %% [markdown]
# Punkt reaches precision {glue:text}`seg_punkt_precision:.3f` and F1 {glue:text}`seg_punkt_F1:.3f`, against
# {glue:text}`seg_naive_precision:.3f` and {glue:text}`seg_naive_F1:.3f` for the regex: the
# {glue:text}`punkt_n_abbrevs` abbreviations it learned (*mr* and *dr* among them, titles such as
# {glue:text}`punkt_titles` and abbreviations with inner periods such as {glue:text}`punkt_dotted`) remove
# most of the regex's false splits. Neither reaches full recall
# ({glue:text}`seg_punkt_recall:.3f` and {glue:text}`seg_naive_recall:.3f`): only
# {glue:text}`seg_terminal_share:.1%` of Brown's gold sentences end in `.`, `!` or `?`; the rest end in a colon,
# a semicolon or nothing at all (headlines, list items), which no period-based splitter can find. The last
# column shows recall on the boundaries that are findable.
#
# ## Normalisation
#
# Normalisation maps different strings to one form so that counts are not spread over variants. Case folding
# (`str.casefold`, which also maps German *ß* to *ss*) is the simplest. Unicode normalisation is the least
# visible: NFKC replaces *compatibility* characters (ligatures, full-width forms, superscripts, circled digits)
# by their plain equivalents, so that text copied from PDFs or typed with East-Asian input methods matches.

# %%
unicode_examples = [
    "ﬁnancial ofﬁce",
    "ＦＵＬＬ－ｗｉｄｔｈ　ｔｅｘｔ１２３",
    "x² + ½ ⅓ ①",
    "Cafe\u0301 (e + combining accent)",
    "STRASSE vs Straße",
]
pd.DataFrame(
    [
        {
            "input": s,
            "NFKC": unicodedata.normalize("NFKC", s),
            "NFKC + casefold": unicodedata.normalize("NFKC", s).casefold(),
            "len in/out": f"{len(s)}/{len(unicodedata.normalize('NFKC', s))}",
        }
        for s in unicode_examples
    ]
)

# %% [markdown]
# The decomposed *Café* (an *e* followed by a combining accent) looks the same before and after, but NFKC
# composes it into the single code point *é*, so that it matches the usual spelling; `casefold` turns *ß*
# into *ss*. **Stop words** are frequent function words (*the*, *of*, *and*).
# Removing them shrinks a bag-of-words representation a lot while barely changing its vocabulary, which is why
# classic retrieval removed them and why language models must not: they are nearly half of the text
# ({glue:text}`stop_token_share:.1%` below).

# %%
stop_words = set(stopwords.words("english"))
review_words = [w.lower() for w in movie_reviews.words() if w.isalpha()]
content_words = [w for w in review_words if w not in stop_words]
stopword_table = pd.DataFrame(
    {
        "tokens": [len(review_words), len(content_words)],
        "vocabulary": [len(set(review_words)), len(set(content_words))],
    },
    index=["all alphabetic words", "without stop words"],
)
glue("n_stopwords", len(stop_words), display=False)
stop_token_share = 1 - len(content_words) / len(review_words)
assert 0.4 < stop_token_share < 0.5  # "nearly half" in the text
glue("stop_token_share", stop_token_share, display=False)
glue("stop_vocab_drop", len(set(review_words)) - len(set(content_words)), display=False)
stopword_table

# %% [markdown]
# On the movie reviews {cite:p}`pang2004`, NLTK's {glue:text}`n_stopwords` English stop words remove
# {glue:text}`stop_token_share:.1%` of all word tokens but only {glue:text}`stop_vocab_drop:,` vocabulary
# entries.
#
# **Stemming** cuts suffixes by rule: Porter's algorithm {cite:p}`porter1980`, its revision Snowball (the
# "Porter2" English stemmer) and the more aggressive Lancaster (Paice/Husk) stemmer. **Lemmatisation** maps a
# word to its dictionary form with a lexicon (WordNet), and needs the part of speech: *meeting* is a noun or a
# form of *meet*. NLTK's POS-tagger model is not in the offline data, so we use Brown's gold tags mapped to the
# universal tagset {cite:p}`petrov2012` and from there to WordNet's four classes.

# %%
from nltk.stem import (
    LancasterStemmer,
    PorterStemmer,
    SnowballStemmer,
    WordNetLemmatizer,
)

stemmers = {
    "Porter": PorterStemmer(),
    "Snowball": SnowballStemmer("english"),
    "Lancaster": LancasterStemmer(),
}
lemmatizer = WordNetLemmatizer()
universal_to_wordnet = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}


def normalise_all(
    word: str, tag: str, stemmers: dict, lemmatizer, tag_map: dict[str, str]
) -> dict[str, str]:
    """One word under each stemmer and under WordNet lemmatisation, without its POS (as
    a noun) and with it (``tag_map`` maps its tag to WordNet's, nouns by default)."""
    lower = word.lower()
    return {
        "word": word,
        "tag": tag,
        **{name: stemmer.stem(lower) for name, stemmer in stemmers.items()},
        "lemma (noun default)": lemmatizer.lemmatize(lower),
        "lemma (gold POS)": lemmatizer.lemmatize(lower, tag_map.get(tag, "n")),
    }

# %% [markdown]
# Two sentences of Brown's news section, word by word:

# %%
news_sents = brown.tagged_sents(categories="news", tagset="universal")
example_sents = [news_sents[i] for i in (453, 471)]
print("\n".join(" ".join(w for w, _ in s) for s in example_sents))
rows = [
    normalise_all(w, t, stemmers, lemmatizer, universal_to_wordnet)
    for s in example_sents
    for w, t in s
    if w.isalpha()
]
# leave out the rows where every method returns the lower-cased word
stem_table = pd.DataFrame(
    [r for r in rows if len({r["word"].lower(), *list(r.values())[2:]}) > 1]
)
stem_table

# %% [markdown]
# For the text, the cell below picks stems that are not English words (not in WordNet) and the forms of *be*.

# %%
table = stem_table.assign(word=stem_table.word.str.lower())
non_words = {  # (word, stem) pairs whose stem is not a WordNet word
    name: [
        (w, st)
        for w, st in zip(table.word, table[name], strict=True)
        if not wordnet.synsets(st)
    ]
    for name in ("Porter", "Lancaster")
}
porter_examples = [(w, st) for w, st in non_words["Porter"] if st != w][:2]
deepest_cut = max(non_words["Lancaster"], key=lambda pair: len(pair[0]) - len(pair[1]))
be_forms = table[table["lemma (gold POS)"] == "be"]
as_noun = be_forms["lemma (noun default)"]
be_kept = be_forms[as_noun == be_forms.word].word.tolist()
be_changed = be_forms[(as_noun != be_forms.word) & (as_noun != "be")]
assert len(porter_examples) == 2 and be_kept and len(be_changed) >= 1
for i, (w, st) in enumerate(porter_examples, start=1):
    glue(f"porter_word_{i}", w, display=False)
    glue(f"porter_stem_{i}", st, display=False)
glue("lancaster_word", deepest_cut[0], display=False)
glue("lancaster_stem", deepest_cut[1], display=False)
glue("be_forms", ", ".join(sorted(be_forms.word)), display=False)
glue("be_kept", " and ".join(be_kept), display=False)
glue("be_changed_word", be_changed.word.iloc[0], display=False)
glue("be_changed_lemma", be_changed["lemma (noun default)"].iloc[0], display=False)

# %% [markdown]
# Rows where all five agree with the lower-cased word are left out. The stemmers produce non-words: Porter
# turns *{glue:text}`porter_word_1`* into *{glue:text}`porter_stem_1`* and *{glue:text}`porter_word_2`* into
# *{glue:text}`porter_stem_2`*, and Lancaster cuts *{glue:text}`lancaster_word`* down to
# *{glue:text}`lancaster_stem`*. The lemmatiser changes only words it finds in WordNet (others come back unchanged) and, given the verb tag, maps
# {glue:text}`be_forms` to *be*. Without the tag it treats every word as a noun: {glue:text}`be_kept` stay
# as they are, and *{glue:text}`be_changed_word`* becomes *{glue:text}`be_changed_lemma`*, a "singular" of a
# plural noun. How much does each method merge over the whole Brown vocabulary?

# %%
brown_tagged_types = Counter(
    (w.lower(), t) for w, t in brown.tagged_words(tagset="universal") if w.isalpha()
)
brown_types = {w for w, _ in brown_tagged_types}
normalised_vocab = {
    "lower-cased words": len(brown_types),
    **{name: len({st.stem(w) for w in brown_types}) for name, st in stemmers.items()},
    "WordNet lemma (gold POS)": len(
        {
            lemmatizer.lemmatize(w, universal_to_wordnet.get(t, "n"))
            for w, t in brown_tagged_types
        }
    ),
}
sizes = list(normalised_vocab.values())  # words, Porter, Snowball, Lancaster, lemmas
assert sizes[3] < min(sizes[1:3]) and sizes[4] > max(sizes[1:4])  # the text below
assert [lemmatizer.lemmatize(w, "n") for w in ("us", "as")] == ["u", "a"]
keys = ("words", "porter", "snowball", "lancaster", "lemma")
for key, size in zip(keys, sizes, strict=True):
    glue(f"normvocab_{key}", size, display=False)
pd.Series(normalised_vocab, name="distinct forms in Brown").to_frame()

# %% [markdown]
# Brown's {glue:text}`normvocab_words:,` lower-cased word types become {glue:text}`normvocab_porter:,` Porter
# stems, {glue:text}`normvocab_snowball:,` Snowball stems and only {glue:text}`normvocab_lancaster:,` Lancaster
# stems, while lemmatisation keeps {glue:text}`normvocab_lemma:,` forms: it only replaces a word by a lemma that
# WordNet lists for the given part of speech, which mostly undoes inflection (*was* → *be* with the verb tag).
# It makes mistakes too: words whose tag has no WordNet class (pronouns, prepositions) are looked up as nouns,
# so *us* becomes *u* and *as* becomes *a*. Modern language models skip all of this and learn from raw (at most
# NFKC-normalised) text, with subwords handling the variants — the last section of this chapter.
#
# ## Corpus statistics: Zipf and Heaps
#
# Word frequencies are famously skewed. Zipf's law {cite:p}`zipf1949` says that the frequency of the word of
# rank $r$ falls as a power of the rank,
#
# $$
# f(r) \approx C\, r^{-s}, \qquad \log f(r) \approx \log C - s \log r,
# $$ (eq-text-zipf)
#
# with $s$ close to 1 for English. We count the lower-cased alphabetic words of Brown with NLTK's `FreqDist`.

# %%
brown_words = [w.lower() for w in brown.words() if w.isalpha()]
brown_freq = nltk.FreqDist(brown_words)
glue("brown_n_tokens", len(brown_words), display=False)
glue("brown_n_types", len(brown_freq), display=False)
glue("brown_hapax", len(brown_freq.hapaxes()), display=False)
glue("brown_top3", ", ".join(w for w, _ in brown_freq.most_common(3)), display=False)
print(
    f"{len(brown_words):,} tokens, {len(brown_freq):,} types, "
    f"{len(brown_freq.hapaxes()):,} hapax legomena"
)
pd.DataFrame(brown_freq.most_common(12), columns=["word", "count"]).set_index("word").T

# %% [markdown]
# We fit the exponent by least squares on the log-log scale over ranks 10 to 10,000: the first few ranks
# ({glue:text}`brown_top3`) and the long tail of words seen once or twice, where frequencies are integers and ties
# make the curve a staircase, both bend away from a straight line. We fit at 200 log-spaced ranks so that each
# decade weighs the same; with every rank, the 9,000 ranks above 1,000 would dominate the fit.

# %%
frequencies = np.array(sorted(brown_freq.values(), reverse=True), dtype=float)
ranks = np.arange(1, len(frequencies) + 1)
fit_ranks = np.unique(np.logspace(1, 4, 200).astype(int))  # 10..10,000, log-spaced
zipf_slope, zipf_intercept = np.polyfit(
    np.log(fit_ranks), np.log(frequencies[fit_ranks - 1]), 1
)
zipf_s = -zipf_slope
all_ranks = (ranks >= 10) & (ranks <= 10_000)
zipf_s_all_ranks = -np.polyfit(
    np.log(ranks[all_ranks]), np.log(frequencies[all_ranks]), 1
)[0]
glue("zipf_s", float(zipf_s), display=False)
glue("zipf_s_all_ranks", float(zipf_s_all_ranks), display=False)
print(f"s = {zipf_s:.3f} (log-spaced ranks), {zipf_s_all_ranks:.3f} (every rank)")

# %% [markdown]
# The rank–frequency plot with the fitted line:

# %%
fig, ax = plt.subplots()
ax.loglog(
    ranks, frequencies, ".", markersize=2, alpha=0.5, label="Brown (lower-cased words)"
)
ax.loglog(
    fit_ranks,
    np.exp(zipf_intercept) * fit_ranks**zipf_slope,
    "r-",
    label=f"fit on ranks 10–10,000: s = {zipf_s:.2f}",
)
ax.set_xlabel("rank r")
ax.set_ylabel("frequency f(r)")
ax.legend()
glue("fig_zipf", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_zipf
# :name: fig-text-zipf
# :figwidth: 90%
#
# Rank–frequency plot of Brown's lower-cased words on log–log axes, with the least-squares line of
# {eq}`eq-text-zipf` fitted at log-spaced ranks from 10 to 10,000.
# ```
#
# The fitted exponent is $s =$ {glue:text}`zipf_s:.3f`, close to Zipf's 1 (fitting every rank in the same
# range instead gives {glue:text}`zipf_s_all_ranks:.3f`: the exponent depends on how one fits). Brown has
# {glue:text}`brown_n_tokens:,` word tokens but {glue:text}`brown_n_types:,` types, of which
# {glue:text}`brown_hapax:,` occur exactly once: any vocabulary will miss words, which is why we need `<unk>`
# or subwords.
#
# Heaps' law {cite:p}`heaps1978` describes the same skew from the other side: the vocabulary keeps growing as we
# read more text, but sublinearly,
#
# $$
# V(N) \approx K N^{\beta}, \qquad 0 < \beta < 1,
# $$ (eq-text-heaps)
#
# where $N$ is the number of tokens read and $V(N)$ the number of distinct types among them.

# %%
seen, vocab_growth = set(), []
checkpoints = set(
    np.unique(np.logspace(2, np.log10(len(brown_words)), 60).astype(int)).tolist()
)
for n, word in enumerate(brown_words, start=1):
    seen.add(word)
    if n in checkpoints:
        vocab_growth.append((n, len(seen)))
heaps_n, heaps_v = np.array(vocab_growth, dtype=float).T
heaps_fit = heaps_n >= 10_000
heaps_beta, heaps_log_k = np.polyfit(
    np.log(heaps_n[heaps_fit]), np.log(heaps_v[heaps_fit]), 1
)
heaps_beta_late = np.polyfit(
    np.log(heaps_n[heaps_n >= 100_000]), np.log(heaps_v[heaps_n >= 100_000]), 1
)[0]
glue("heaps_beta", float(heaps_beta), display=False)
glue("heaps_k", float(np.exp(heaps_log_k)), display=False)
glue("heaps_beta_late", float(heaps_beta_late), display=False)
assert heaps_beta_late < heaps_beta - 0.05  # the curve bends (text below)
print(
    f"K = {np.exp(heaps_log_k):.1f}, beta = {heaps_beta:.3f} (N >= 10,000), "
    f"{heaps_beta_late:.3f} (N >= 100,000)"
)

# %% [markdown]
# The growth curve and the fit:

# %%
fig, ax = plt.subplots()
ax.loglog(heaps_n, heaps_v, "o", markersize=3, label="Brown, in corpus order")
heaps_curve = np.exp(heaps_log_k) * heaps_n**heaps_beta
ax.plot(
    heaps_n[heaps_fit],
    heaps_curve[heaps_fit],
    "r-",
    label=f"K N^β fitted on N ≥ 10,000: K = {np.exp(heaps_log_k):.1f}, "
    f"β = {heaps_beta:.3f}",
)
# extrapolate up to the first fitted point, so that the two lines meet
extrapolated = heaps_n <= heaps_n[heaps_fit].min()
ax.plot(
    heaps_n[extrapolated],
    heaps_curve[extrapolated],
    "r--",
    label="the same fit, extrapolated",
)
ax.set_xlabel("tokens read N")
ax.set_ylabel("vocabulary size V(N)")
ax.legend()
glue("fig_heaps", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_heaps
# :name: fig-text-heaps
# :figwidth: 90%
#
# Vocabulary growth of Brown read in corpus order (log–log axes), with the fit of {eq}`eq-text-heaps`
# (least squares on the log–log scale, over the points with $N \ge 10{,}000$; solid over that range, dashed
# where it is extrapolated to smaller $N$).
# ```
#
# The fit gives $K =$ {glue:text}`heaps_k:.1f` and $\beta =$ {glue:text}`heaps_beta:.3f`: doubling the text
# multiplies the vocabulary by about $2^\beta$. The curve clearly bends: fitted only on $N \ge 100{,}000$ the
# exponent drops to {glue:text}`heaps_beta_late:.3f`, so growth slows as we read on and a single power law is
# only a rough approximation (exercise 3 asks whether the order of the texts matters). Still, the vocabulary
# never saturates, so a word-level model will always meet unseen words.
#
# ### Collocations
#
# Some word pairs occur together far more often than chance: *United States*, *per cent*. Pointwise mutual
# information compares the observed bigram probability with what independence predicts,
#
# $$
# \operatorname{PMI}(u, v) = \log_2 \frac{P(u, v)}{P(u)\,P(v)},
# $$ (eq-text-pmi)
#
# but it rewards rare pairs (two words seen once, together, get the maximum score), so we require a minimum
# count. Dunning's log-likelihood ratio {cite:p}`dunning1993` tests the same independence hypothesis with a
# statistic that grows with evidence and prefers frequent pairs. Both are in `nltk.collocations`
# {cite:p}`manning1999`; we count bigrams of the lower-cased alphabetic words (punctuation removed) and ignore
# pairs that contain a stop word.

# %%
from nltk.collocations import BigramAssocMeasures, BigramCollocationFinder

bigram_measures = BigramAssocMeasures()
collocation_finder = BigramCollocationFinder.from_words(brown_words)
collocation_finder.apply_word_filter(lambda w: w in stop_words)
pmi_finder = BigramCollocationFinder(
    collocation_finder.word_fd, collocation_finder.ngram_fd.copy()
)
pmi_finder.apply_freq_filter(20)
top_pmi = pmi_finder.score_ngrams(bigram_measures.pmi)[:10]
top_llr = collocation_finder.score_ngrams(bigram_measures.likelihood_ratio)[:10]
glue("top_pmi", ", ".join(" ".join(b) for b, _ in top_pmi[:3]), display=False)
glue("top_llr", ", ".join(" ".join(b) for b, _ in top_llr[:3]), display=False)
bigram_count = collocation_finder.ngram_fd
mean_count = {
    name: np.mean([bigram_count[b] for b, _ in top])
    for name, top in (("pmi", top_pmi), ("llr", top_llr))
}
assert mean_count["llr"] > mean_count["pmi"]  # the ratio prefers frequent pairs (text)
glue("top_pmi_mean_count", float(mean_count["pmi"]), display=False)
glue("top_llr_mean_count", float(mean_count["llr"]), display=False)
pd.DataFrame(
    {
        "PMI (count ≥ 20)": [f"{' '.join(b)} ({s:.1f})" for b, s in top_pmi],
        "likelihood ratio": [f"{' '.join(b)} ({s:.0f})" for b, s in top_llr],
    }
)

# %% [markdown]
# PMI with a frequency floor finds fixed names and terms (its top three: {glue:text}`top_pmi`); the
# likelihood ratio ranks the most *reliably* associated pairs, which are frequent phrases (its top three:
# {glue:text}`top_llr`). Its ten best pairs occur {glue:text}`top_llr_mean_count:,.0f` times on average,
# PMI's {glue:text}`top_pmi_mean_count:,.0f` times.
#
# ## Vocabulary
#
# A model sees integer ids, not strings. The `Vocab` class below is the book's word vocabulary: four special
# tokens with fixed ids (`<pad>`=0 pads batches, `<unk>`=1 stands for any token outside the vocabulary,
# `<bos>`=2 and `<eos>`=3 mark sequence boundaries), then the tokens seen at least `min_freq` times, most
# frequent first (ties alphabetical, so ids are reproducible). It is exported to `lmlib.text`, whose first
# cell holds the imports and the special tokens.

# %%
# lmlib: text
import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# %% [markdown]
# A vocabulary is built from token counts; `count_tokens` makes them from a flat list of tokens or from a list
# of sentences.

# %%
# lmlib: text
def count_tokens(tokens: Iterable[str] | Iterable[Iterable[str]]) -> Counter:
    """Count tokens given as one flat sequence of strings or as token lists."""
    counts: Counter = Counter()
    for item in tokens:
        if isinstance(item, str):
            counts[item] += 1
        else:
            counts.update(item)
    return counts

# %% [markdown]
# The class itself:

# %%
# lmlib: text
class Vocab:
    """A token <-> id mapping with ``<pad> <unk> <bos> <eos>`` at ids 0..3.

    ``Vocab(counts_or_tokens, min_freq=1, max_size=None)`` takes counts (a Counter or
    any other mapping from token to count), a flat list of tokens or a list of token
    lists. Special tokens in the input are not duplicated. Tokens seen fewer than
    ``min_freq`` times are left out and encode to ``<unk>``. Regular tokens follow the
    specials ordered by decreasing count, ties alphabetically.
    """

    def __init__(
        self,
        counts: Mapping[str, int] | Iterable,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> None:
        counts = counts if isinstance(counts, Mapping) else count_tokens(counts)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in SPECIAL_TOKENS),
            key=lambda t: (-counts[t], t),
        )
        self.itos: list[str] = list(SPECIAL_TOKENS) + kept[:max_size]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def from_itos(cls, itos: Iterable[str]) -> "Vocab":
        """The vocabulary whose ids are the positions in ``itos`` (a saved ``.itos``);
        it must start with the special tokens and hold no token twice."""
        itos = list(itos)
        starts_right = tuple(itos[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
        if not starts_right or len(set(itos)) < len(itos):
            raise ValueError(
                f"itos must start with {SPECIAL_TOKENS} and hold no token twice"
            )
        vocab = cls({})
        vocab.itos, vocab.stoi = itos, {t: i for i, t in enumerate(itos)}
        return vocab

    def __len__(self) -> int:
        """Number of entries, specials included."""
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        """Whether ``token`` has its own id."""
        return token in self.stoi

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``UNK_ID`` when it is not in the vocabulary."""
        return self.stoi.get(token, UNK_ID)

    def id_to_token(self, index: int) -> str:
        """The token with id ``index``."""
        return self.itos[index]

    def encode(self, tokens: Iterable[str], add_bos_eos: bool = False) -> list[int]:
        """Token ids (unknown: ``<unk>``), optionally within ``<bos>`` ... ``<eos>``."""
        ids = [self.stoi.get(t, UNK_ID) for t in tokens]
        return [BOS_ID, *ids, EOS_ID] if add_bos_eos else ids

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Tokens of ``ids``; ``skip_specials`` drops ``<pad> <bos> <eos>``."""
        return [
            self.itos[i]
            for i in ids
            if not (skip_specials and i in (PAD_ID, BOS_ID, EOS_ID))
        ]

    def oov_rate(self, tokens: Iterable[str]) -> float:
        """Fraction of ``tokens`` not in the vocabulary (encoded as ``<unk>``)."""
        tokens = list(tokens)
        return sum(t not in self.stoi for t in tokens) / max(1, len(tokens))


# %% [markdown]
# We split Tiny Shakespeare {cite:p}`karpathy2015` by position: the first 90% for training, and the rest for
# evaluation, cut at the first blank line (a change of speaker) after the 90% mark. The held-out part finishes
# a scene that the training part began and then goes on to scenes it never saw, so it is mostly unseen text:
# {glue:text}`heldout_new_speakers` of its {glue:text}`heldout_speakers` speaking characters never speak in the
# training part. We cut words with the pattern `\w+|[^\w\s]+` (words, and runs of punctuation). Case is kept:
# *King* and *king* are different tokens. As a demonstration we encode the first held-out line that contains
# an unknown word.

# %%
shakespeare = fetch("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
split_at = shakespeare.index("\n\n", int(0.9 * len(shakespeare))) + 2  # new speaker
shakespeare_train, shakespeare_heldout = shakespeare[:split_at], shakespeare[split_at:]
speakers_train, speakers_heldout = (
    set(re.findall(r"(?:\A|\n\n)([^\n:]+):\n", part))  # name after a blank line
    for part in (shakespeare_train, shakespeare_heldout)
)
glue("heldout_speakers", len(speakers_heldout), display=False)
new_speakers = speakers_heldout - speakers_train
assert 2 * len(new_speakers) > len(speakers_heldout)  # "mostly unseen text"
glue("heldout_new_speakers", len(new_speakers), display=False)
print(f"{len(new_speakers)} of {len(speakers_heldout)} held-out speakers are new")

# %% [markdown]
# The word vocabulary of the training part, and the first held-out line with an unknown word, encoded and
# decoded:

# %%
train_words = re.findall(r"\w+|[^\w\s]+", shakespeare_train)
heldout_words = re.findall(r"\w+|[^\w\s]+", shakespeare_heldout)
word_counts = Counter(train_words)
vocab = Vocab(word_counts)
demo_line = next(
    line
    for line in shakespeare_heldout.splitlines()
    if any(w not in vocab for w in re.findall(r"\w+|[^\w\s]+", line))
)
example_ids = vocab.encode(re.findall(r"\w+|[^\w\s]+", demo_line), add_bos_eos=True)
print(repr(demo_line))
print(example_ids)
print(vocab.decode(example_ids))
assert vocab.decode(vocab.encode(train_words[:1000])) == train_words[:1000]

# %% [markdown]
# Raising `min_freq` shrinks the vocabulary quickly (most types are rare, as Zipf predicts) at the price of
# more `<unk>` tokens on held-out text.

# %%
oov_rows = []
for min_freq in (1, 2, 3, 5, 10):
    v = Vocab(word_counts, min_freq=min_freq)
    oov_rows.append(
        {
            "min_freq": min_freq,
            "vocabulary (with specials)": len(v),
            "train OOV": v.oov_rate(train_words),
            "held-out OOV": v.oov_rate(heldout_words),
        }
    )
    glue(f"vocab_size_mf{min_freq}", len(v), display=False)
    glue(f"oov_mf{min_freq}", v.oov_rate(heldout_words), display=False)
oov_table = pd.DataFrame(oov_rows).set_index("min_freq")
oov_table.style.format(
    {
        "vocabulary (with specials)": "{:,}",
        "train OOV": "{:.2%}",
        "held-out OOV": "{:.2%}",
    }
)

# %% [markdown]
# With every training word kept ({glue:text}`vocab_size_mf1:,` entries) {glue:text}`oov_mf1:.2%` of held-out
# tokens are still unknown — names and rare words of the unseen scenes. Keeping only words seen 10 times or more
# cuts the vocabulary to {glue:text}`vocab_size_mf10:,` and the OOV rate rises to {glue:text}`oov_mf10:.2%`.
#
# ## Subwords: byte-pair encoding
#
# Byte-pair encoding {cite:p}`sennrich2016` removes OOV words by building words from pieces. Each word of the
# training text starts as a sequence of characters, with an end-of-word marker on the last one
# (*low* → `l o w</w>`), so that a suffix like `er</w>` differs from the `er` in *erase*. Then, with
# $c(a, b)$ the number of times symbol $a$ is directly followed by $b$ (weighted by word frequency), BPE
# repeatedly merges the most frequent pair into a new symbol:
#
# $$
# (a^*, b^*) = \arg\max_{(a, b)} c(a, b), \qquad a\,b \;\to\; ab \text{ everywhere}.
# $$ (eq-text-bpe-merge)
#
# Pair counts count overlapping occurrences (the symbols `a a a` contain the pair `a a` twice), while a
# merge replaces non-overlapping occurrences from left to right (`a a a` becomes `aa a`), as in
# Sennrich et al.'s code and in `tokenizers`. The result is an ordered list of merges. Encoding a new word
# replays them: start from characters and repeatedly apply the merge of lowest rank present in the word.
# Frequent words end up as one symbol, rare words as a few pieces, and only unseen *characters* can be unknown.
#
# Recounting all pairs after each merge is slow: $O$(word types × word length) per merge. Only words that
# contain the merged pair change, so we keep the pair counts, an index from each pair to the words containing
# it, and a heap of candidates with lazy deletion (outdated entries are skipped when popped). Ties in
# {eq}`eq-text-bpe-merge` are broken by taking the lexicographically smallest pair, so learning is
# deterministic.

# %%
# lmlib: text
WORD_PATTERN = re.compile(r"\w+|[^\w\s]+")


def pre_tokenize(text: str) -> list[str]:
    """Words and punctuation runs (``\\w+|[^\\w\\s]+``, as HF's ``Whitespace``)."""
    return WORD_PATTERN.findall(text)

# %% [markdown]
# One merge replaces the non-overlapping occurrences of a pair, from left to right:

# %%
# lmlib: text
def merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace each non-overlapping ``pair`` (left to right) by its join."""
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            merged.append(pair[0] + pair[1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged

# %% [markdown]
# The `BPE` class learns merges (the incremental algorithm above, in `learn`) and applies them (`encode_word`,
# `encode`, `decode`).

# %%
# lmlib: text
class BPE:
    """Byte-pair encoding (Sennrich et al., 2016) with an end-of-word marker.

    The marker goes on each word's last symbol. ``BPE.learn(word_counts, num_merges)``
    learns merges from a Counter of words; ``encode`` applies them in rank order to each
    pre-tokenised word; ``decode`` joins the pieces and turns end-of-word markers into
    spaces.
    """

    def __init__(
        self,
        merges: Iterable[tuple[str, str]],
        alphabet: Iterable[str] = (),
        end_of_word: str = "</w>",
    ) -> None:
        self.merges: list[tuple[str, str]] = [tuple(m) for m in merges]
        self.ranks: dict[tuple[str, str], int] = {
            pair: i for i, pair in enumerate(self.merges)
        }
        self.alphabet: list[str] = sorted(set(alphabet))
        self.end_of_word = end_of_word
        self._cache: dict[str, list[str]] = {}

    def word_symbols(self, word: str) -> list[str]:
        """A word as characters, the end-of-word marker attached to the last one."""
        return [*word[:-1], word[-1] + self.end_of_word] if word else []

    @classmethod
    def learn(
        cls,
        word_counts: Counter,
        num_merges: int,
        min_frequency: int = 2,
        end_of_word: str = "</w>",
    ) -> "BPE":
        """Learn up to ``num_merges`` merges; stop when the best pair occurs fewer than
        ``min_frequency`` times.

        Ties between equally frequent pairs go to the lexicographically smallest pair.
        """
        bpe = cls([], end_of_word=end_of_word)
        vocab_words = sorted(w for w in word_counts if w)
        words = [bpe.word_symbols(w) for w in vocab_words]
        freqs = [word_counts[w] for w in vocab_words]
        pair_counts: Counter = Counter()
        where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
        for i, symbols in enumerate(words):
            for pair in zip(symbols, symbols[1:], strict=False):
                pair_counts[pair] += freqs[i]
                where[pair].add(i)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[str, str]] = []
        while heap and len(merges) < num_merges:
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg_count:
                continue  # outdated heap entry
            if -neg_count < max(1, min_frequency):
                break
            merges.append(pair)
            changed = set()
            for i in sorted(where.pop(pair)):
                old, new = words[i], merge_pair(words[i], pair)
                if len(new) == len(old):
                    continue  # this word no longer contains the pair
                for p in zip(old, old[1:], strict=False):
                    pair_counts[p] -= freqs[i]
                    changed.add(p)
                for p in zip(new, new[1:], strict=False):
                    pair_counts[p] += freqs[i]
                    where[p].add(i)
                    changed.add(p)
                words[i] = new
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        alphabet = {s for w in vocab_words for s in bpe.word_symbols(w)} | set(
            "".join(vocab_words)
        )
        return cls(merges, alphabet, end_of_word)

    @property
    def vocab(self) -> list[str]:
        """All symbols: the alphabet (characters, with and without the marker), then the
        merged symbols in order."""
        return list(dict.fromkeys([*self.alphabet, *(a + b for a, b in self.merges)]))

    def encode_word(self, word: str) -> list[str]:
        """The pieces of a word: apply the lowest-ranked merge present until none
        does."""
        if word not in self._cache:
            symbols = self.word_symbols(word)
            while len(symbols) > 1:
                rank, pair = min(
                    (self.ranks.get(p, len(self.ranks)), p)
                    for p in zip(symbols, symbols[1:], strict=False)
                )
                if rank == len(self.ranks):
                    break
                symbols = merge_pair(symbols, pair)
            self._cache[word] = symbols
        return list(self._cache[word])

    def encode(self, text: str) -> list[str]:
        """Pre-tokenise ``text`` (a word or running text) and encode every word."""
        return [
            piece for word in pre_tokenize(text) for piece in self.encode_word(word)
        ]

    def decode(self, tokens: Iterable[str]) -> str:
        """Join pieces; each end-of-word marker becomes a space (one between words)."""
        return "".join(tokens).replace(self.end_of_word, " ").strip()


# %% [markdown]
# A toy corpus first, the one of the BPE paper: the first merges join the frequent `e s`, then `es t</w>`,
# building the suffix *est* (the cell asserts these two).

# %%
toy_bpe = BPE.learn(
    Counter({"low": 5, "lower": 2, "newest": 6, "widest": 3}), num_merges=6
)
print(toy_bpe.merges)
assert toy_bpe.merges[:2] == [("e", "s"), ("es", "t</w>")]
print(
    toy_bpe.encode("lowest newer"),
    "->",
    repr(toy_bpe.decode(toy_bpe.encode("lowest newer"))),
)

# %% [markdown]
# Now the real thing: {glue:text}`bpe_merges:,` merges on the training part of Tiny Shakespeare.

# %%
bpe = BPE.learn(word_counts, num_merges=cfg.bpe_merges, min_frequency=2)
glue("bpe_merges", len(bpe.merges), display=False)
print(f"{len(bpe.merges):,} merges; vocabulary {len(bpe.vocab):,} symbols")
print("first merges:", bpe.merges[:10])
sample_line = "Thou art the unreconciled fairest villain of Padua!"
print(bpe.encode(sample_line))
assert bpe.decode(bpe.encode(sample_line)) == " ".join(pre_tokenize(sample_line))

# %% [markdown]
# ### Checking against Hugging Face `tokenizers`
#
# The `tokenizers` library (Rust) implements the same algorithm. We give it the same pre-tokenisation
# (`Whitespace`, the pattern above), the same end-of-word suffix, the same minimum pair frequency, and a
# vocabulary size equal to our initial alphabet plus our number of merges, then compare the merge lists.
# One detail matters for reproducibility: `tokenizers` numbers the symbols that carry the end-of-word suffix in
# the order it meets them in a hash map, which changes from run to run, and those numbers break ties (below),
# so its merges changed between identical runs. Registering these symbols up front, in sorted order, as
# special tokens fixes their ids and makes its training deterministic.

# %%
import json

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

hf_tokenizer = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
hf_tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
suffixed_symbols = sorted({word[-1] + "</w>" for word in word_counts})
hf_trainer = trainers.BpeTrainer(
    vocab_size=len(bpe.alphabet) + len(bpe.merges),
    min_frequency=2,
    end_of_word_suffix="</w>",
    special_tokens=suffixed_symbols,
    show_progress=False,
)
hf_tokenizer.train_from_iterator([shakespeare_train], hf_trainer)
hf_merges = [
    tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
    for m in json.loads(hf_tokenizer.to_str())["model"]["merges"]
]
print(f"HF: {len(hf_merges):,} merges")

# %% [markdown]
# The two merge lists, position by position and as sets:

# %%
n_compare = min(len(hf_merges), len(bpe.merges))
same_position = [a == b for a, b in zip(bpe.merges, hf_merges, strict=False)]
first_disagreement = same_position.index(False) if False in same_position else n_compare
merge_agreement = {
    n: len(set(bpe.merges[:n]) & set(hf_merges[:n])) / n for n in (100, 500, n_compare)
}
print(
    f"ours {len(bpe.merges):,} merges, HF {len(hf_merges):,}; "
    f"identical prefix: {first_disagreement:,}"
)
print({f"first {n:,} (as sets)": f"{a:.1%}" for n, a in merge_agreement.items()})
if first_disagreement < n_compare:
    print(
        "first disagreement:",
        bpe.merges[first_disagreement],
        "vs HF",
        hf_merges[first_disagreement],
    )
glue("bpe_identical_prefix", first_disagreement, display=False)
glue("bpe_n_compare", n_compare, display=False)
glue("bpe_set_agreement", merge_agreement[n_compare], display=False)
glue("bpe_merges_requested", cfg.bpe_merges, display=False)
glue("bpe_merges_hf", len(hf_merges), display=False)

# %% [markdown]
# Whether the minimum frequency stopped either implementation early decides one sentence of the text:

# %%
if len(bpe.merges) == len(hf_merges) == cfg.bpe_merges:
    stopping_note = (
        "both learned every merge we asked for before any pair fell below the minimum "
        "frequency, so the frequency threshold causes no difference"
    )
else:
    stopping_note = (
        "the minimum frequency stopped learning before the requested number, at "
        "different points for the two implementations, so the lists also differ in "
        "length"
    )
glue("bpe_stopping_note", stopping_note, display=False)

# %% [markdown]
# Where do they differ? Let us look at the counts of the pairs at the first disagreement, and compare how many
# tokens each tokeniser produces on the held-out text.

# %%
pair_counter: Counter = Counter()
for word, count in word_counts.items():
    symbols = bpe.word_symbols(word)
    for merge in bpe.merges[:first_disagreement]:
        symbols = merge_pair(symbols, merge)
    for pair in zip(symbols, symbols[1:], strict=False):
        pair_counter[pair] += count
merge_rank_of = {a + b: rank for rank, (a, b) in enumerate(bpe.merges)}
for name, pair in (
    ("ours", bpe.merges[first_disagreement]),
    ("HF", hf_merges[first_disagreement]),
):
    created = merge_rank_of.get(pair[0], -1) + 1  # 1-based
    print(
        f"{name:>4}: {pair} occurs {pair_counter[pair]} times; "
        f"{pair[0]!r} was created by merge {created}"
    )
    glue(f"bpe_tie_count_{name}", pair_counter[pair], display=False)
    glue(f"bpe_tie_created_{name}", created, display=False)
assert (
    pair_counter[bpe.merges[first_disagreement]]
    == pair_counter[hf_merges[first_disagreement]]
)
assert (
    0
    < merge_rank_of[hf_merges[first_disagreement][0]]
    < merge_rank_of[bpe.merges[first_disagreement][0]]
)

# %% [markdown]
# And the number of tokens each produces on the held-out text:

# %%
ours_heldout = bpe.encode(shakespeare_heldout)
hf_heldout = hf_tokenizer.encode(shakespeare_heldout).tokens
glue("bpe_heldout_ours", len(ours_heldout), display=False)
glue("bpe_heldout_hf", len(hf_heldout), display=False)
glue(
    "bpe_heldout_reldiff",
    abs(len(ours_heldout) - len(hf_heldout)) / len(hf_heldout),
    display=False,
)
print(
    f"held-out tokens: ours {len(ours_heldout):,}, HF {len(hf_heldout):,}; "
    f"identical token sequences: {ours_heldout == hf_heldout}"
)

# %% [markdown]
# The first {glue:text}`bpe_identical_prefix:,` merges are identical, in the same order. The first disagreement
# is a tie: both candidate pairs (printed above) occur {glue:text}`bpe_tie_count_ours:,` times, and the two
# implementations break ties differently. We take the lexicographically smallest pair of strings; `tokenizers`
# takes the pair with the smallest internal symbol ids, and it hands out ids in order of creation (here the
# suffixed characters we registered, then plain characters by code point, then merged symbols as they are
# made). Its choice starts with a symbol made by merge {glue:text}`bpe_tie_created_HF`, ours with one made by
# merge {glue:text}`bpe_tie_created_ours`: the older symbol wins there. After one different choice the later
# merges drift apart, but as sets {glue:text}`bpe_set_agreement:.1%` of the first {glue:text}`bpe_n_compare:,`
# merges agree, and on held-out text our tokeniser produces {glue:text}`bpe_heldout_ours:,` tokens against
# {glue:text}`bpe_heldout_hf:,` for `tokenizers` (a relative difference of
# {glue:text}`bpe_heldout_reldiff:.2%`). We asked for {glue:text}`bpe_merges_requested:,` merges with
# `min_frequency=2` and got {glue:text}`bpe_merges:,` (ours) and {glue:text}`bpe_merges_hf:,` (`tokenizers`):
# {glue:text}`bpe_stopping_note`.
#
# ### Characters, words or subwords?
#
# Finally the three granularities side by side on the held-out tenth of Tiny Shakespeare: the vocabulary each
# needs, how long a line becomes, and how often a token is unknown.

# %%
heldout_lines = [line for line in shakespeare_heldout.splitlines() if line.strip()]
char_vocab = set(shakespeare_train)
bpe_vocab = set(bpe.vocab)
heldout_pieces = bpe.encode(shakespeare_heldout)
granularity_table = pd.DataFrame(
    {
        "characters": [
            len(char_vocab),
            np.mean([len(x) for x in heldout_lines]),
            np.mean([c not in char_vocab for c in shakespeare_heldout]),
        ],
        "words (min_freq=1)": [
            len(vocab),
            np.mean([len(pre_tokenize(x)) for x in heldout_lines]),
            vocab.oov_rate(heldout_words),
        ],
        f"BPE ({len(bpe.merges):,} merges)": [
            len(bpe_vocab),
            np.mean([len(bpe.encode(x)) for x in heldout_lines]),
            np.mean([p not in bpe_vocab for p in heldout_pieces]),
        ],
    },
    index=["vocabulary size", "tokens per line", "OOV rate"],
).T
granularity_table.style.format(
    {"vocabulary size": "{:,.0f}", "tokens per line": "{:.1f}", "OOV rate": "{:.2%}"}
)

# %% [markdown]
# BPE sits between characters and words on both counts, and, like characters, has no unknown tokens:

# %%
for key, row in zip(("char", "word", "bpe"), granularity_table.to_numpy(), strict=True):
    glue(f"gran_{key}_vocab", int(row[0]), display=False)
    glue(f"gran_{key}_per_line", float(row[1]), display=False)
char_row, word_row, bpe_row = granularity_table.to_numpy()
assert char_row[0] < bpe_row[0] < word_row[0] and char_row[1] > bpe_row[1] > word_row[1]
assert char_row[2] == bpe_row[2] == 0 < word_row[2]

# %% [markdown]
# Characters need only {glue:text}`gran_char_vocab` symbols and are never unknown here, but make sequences long
# ({glue:text}`gran_char_per_line:.1f` tokens per line). Words make them short
# ({glue:text}`gran_word_per_line:.1f`) but need {glue:text}`gran_word_vocab:,` entries and still miss
# {glue:text}`oov_mf1:.2%` of held-out tokens. BPE sits between them on both counts, with
# {glue:text}`gran_bpe_vocab:,` symbols and {glue:text}`gran_bpe_per_line:.1f` tokens per line, and has no
# unknown tokens. This trade-off — a fixed, moderate vocabulary with open coverage — is why every model from
# chapter 07 on uses subwords. (Byte-level BPE, as in GPT-2, starts from the 256 byte values instead of
# characters, so that even unseen characters are covered.)
#
# ## Exercises
#
# 1. **Tokeniser pattern.** `RegexpTokenizer` already keeps the e-mail address whole but splits the title
#    `Dr.` into `Dr | .` and the emoticons `<3` and `:'(` into two and three tokens. Extend `regexp_pattern`
#    so that all three are single tokens, without swallowing sentence-final periods. Predict the new token
#    count of `tricky_text` before running it, then check on `"Dr. Who <3 :'( the end."`.
# 2. **Punkt without collocations.** Set `INCLUDE_ALL_COLLOCS = False`, and separately train on only 20 Brown
#    files. Predict which of precision and recall changes more, then measure. Which abbreviations disappear?
# 3. **Zipf's fit range.** Refit the exponent on ranks 1–100 and on ranks 1,000–30,000. Explain the
#    differences with the shape of {numref}`fig-text-zipf`. Does Heaps' $\beta$ change if you shuffle Brown's
#    sentences before counting?
# 4. **Tie-breaking.** Change the heap entries in `BPE.learn` so that ties go to the *largest* pair. Predict
#    how many of the first 100 merges change on Tiny Shakespeare, then measure, and compare the held-out token
#    count with the original.
# 5. **Vocabulary size.** Train BPE with 500, 2,000 and 8,000 merges and plot tokens per line against the
#    vocabulary size. Where does adding merges stop paying off?
# 6. **Lemmas without tags.** movie_reviews has no POS tags. Lemmatise its vocabulary with the POS-less
#    lemmatiser and compare the reduction with Porter stemming; list the ten most frequent words on which they
#    disagree, and say which would hurt a sentiment classifier more.
#
# ## Summary
#
# - Tokenisers disagree on contractions, numbers, URLs and emoticons; choose one that matches the text
#   (`TweetTokenizer` for social media, Treebank rules for edited prose) or write the regular expression.
# - Punkt learns abbreviations from unlabelled text; trained on Brown it beats a regex splitter on Brown's gold
#   boundaries, mainly in precision.
# - NFKC and case folding are cheap and safe; stemming and lemmatisation shrink the vocabulary but lose
#   information, and lemmatisation needs part-of-speech tags.
# - Word frequencies follow Zipf's law and vocabularies grow as Heaps' law says, so word-level vocabularies
#   always leave unknown words; `Vocab` handles them with `<unk>`.
# - BPE learns a subword vocabulary that covers every word; our implementation matches `tokenizers` up to
#   tie-breaking. `lmlib.text` exports `Vocab`, `BPE` and `pre_tokenize` for the rest of the book.
