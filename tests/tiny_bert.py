"""Small random-init encoders with vocabularies trained on local text, no download at all: a BERT with
WordPiece, and an XLM-RoBERTa with a SentencePiece-style Unigram tokenizer and E5's prompts."""
from __future__ import annotations

import json
import os

CORPUS = """
PostgreSQL is a powerful open source object-relational database system.
Semantic search finds documents by meaning rather than by exact words.
The quick brown fox jumps over the lazy dog. Natural language processing is fun.
Embeddings are vectors; similar texts get nearby vectors. I love databases.
自然言語処理 東京 天気 晴れ 日本語 テキスト 検索 データベース
def embed(text): return model(text) # code comments too 12345 67890
""".strip().splitlines()
XLMR_PROMPTS = {"query": "query: ", "passage": "passage: "}


def make_tiny_bert(folder: str, hidden: int = 32, layers: int = 2, sentence_transformers: bool = True,
                   max_seq_length: int = 64, seed: int = 0) -> str:
    """Write a random BertModel + fast tokenizer (+ sentence-transformers mean pooling config) to folder."""
    import json

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    os.makedirs(folder, exist_ok=True)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.train_from_iterator(CORPUS * 20, trainer)
    vocab = sorted(wordpiece.get_vocab().items(), key=lambda kv: kv[1])
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token, _ in vocab)
    tokenizer = BertTokenizerFast(vocab_file=vocab_file, model_max_length=128)
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=128)
    BertModel(config).eval().save_pretrained(folder)
    if sentence_transformers:
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "modules.json"), "w") as f:
            json.dump([
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ], f)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
                       "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}, f)
        with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
            json.dump({"max_seq_length": max_seq_length, "do_lower_case": False}, f)
    return folder


def make_tiny_xlmr(folder: str, hidden: int = 32, layers: int = 2, max_seq_length: int = 64, seed: int = 0,
                   prompts: dict | None = XLMR_PROMPTS, default_prompt_name: str | None = None,
                   normalize: bool = True) -> str:
    """Write a random XLMRobertaModel (the multilingual-e5 architecture) + fast tokenizer + sentence-transformers
    config (mean pooling, E5's prompts by default) to folder. The tokenizer is built the way transformers
    converts XLM-R's sentencepiece model (Unigram, Metaspace, <s> $A </s>; NFKC stands in for sentencepiece's
    precompiled normalization map)."""
    import torch
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    os.makedirs(folder, exist_ok=True)
    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁"),
    ])
    unigram.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    unigram.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    # XLM-R's ids: <s> 0, <pad> 1, </s> 2, <unk> 3, ..., <mask> last.
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", shrinking_factor=0.75)
    unigram.train_from_iterator(CORPUS * 20 + [" ".join(XLMR_PROMPTS.values())] * 20, trainer)
    unigram.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    unigram.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", unigram.token_to_id("<s>")), ("</s>", unigram.token_to_id("</s>"))])
    assert [unigram.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram, model_max_length=512, bos_token="<s>",
                                        eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                        pad_token="<pad>", mask_token="<mask>")
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    # XLM-R's position ids start after padding_idx (1): 2 + 128 positions, as the real one has 2 + 512.
    config = XLMRobertaConfig(vocab_size=unigram.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=130,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    XLMRobertaModel(config).eval().save_pretrained(folder)

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    _write(folder, "modules.json", modules)
    _write(folder, "1_Pooling/config.json", {
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True})
    if normalize:
        os.makedirs(os.path.join(folder, "2_Normalize"), exist_ok=True)
    _write(folder, "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    st_config = {"__version__": {"sentence_transformers": "3.0.0"}, "prompts": prompts or {},
                 "default_prompt_name": default_prompt_name, "similarity_fn_name": "cosine"}
    _write(folder, "config_sentence_transformers.json", st_config)
    return folder


def _write(folder: str, name: str, content) -> None:
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, ensure_ascii=False)
