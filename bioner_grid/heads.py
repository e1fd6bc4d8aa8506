"""Output heads, and what differs between them: the loss, the inputs at prediction time, and how
the model is saved and loaded (``bundle`` calls ``save``/``load``, ``train`` calls ``loss``, the
tagger ``inference_inputs``, through ``head_of(model)`` or ``HEADS[name]``; no other module asks
which head it has).

``softmax`` (``SoftmaxHead``) is transformers' own ``*ForTokenClassification``; ``crf`` is below, and
``mtl`` (``MultiTaskTagger``, one output layer per member corpus: ``dataset.merge=mtl``) after it.

CRF head (AIONER's output layer): a linear layer gives each word's label scores (emissions) from the
encoder's first sub-token of the word; pytorch-crf (``torchcrf.CRF``) scores whole label paths and
trains by negative log-likelihood,

    loss = -log p(y | x) = -(score(x, y) - log sum_y' exp score(x, y')),
    score(x, y) = start[y_1] + sum_i emission_i[y_i] + sum_i transition[y_i, y_{i+1}] + end[y_n].

Sub-tokens after a word's first carry no label and never enter the CRF path. Decoding is Viterbi
with the transitions IOB2 forbids removed (``I-X`` only after ``B-X`` or ``I-X``, never first):
pytorch-crf's own decoder cannot be constrained, so ``viterbi`` here does it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torchcrf import CRF
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification
from transformers.modeling_outputs import TokenClassifierOutput

from bioner_grid.corpus import member_of

NEG = -1e4


def iob2_allowed(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed[prev, next], allowed_start[next]) for an IOB2 label list."""
    n = len(labels)
    allowed = torch.ones(n, n, dtype=torch.bool)
    start = torch.ones(n, dtype=torch.bool)
    for j, nxt in enumerate(labels):
        if nxt.startswith("I-"):
            start[j] = False
            for i, prev in enumerate(labels):
                allowed[i, j] = prev in (f"B-{nxt[2:]}", f"I-{nxt[2:]}")
    return allowed, start


def viterbi(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor,
            end: torch.Tensor, allowed: torch.Tensor, allowed_start: torch.Tensor) -> list[list[int]]:
    """Best label path per sequence (``emissions``: batch x words x labels, ``mask``: batch x words)
    among the paths whose every transition is allowed."""
    trans = transitions.masked_fill(~allowed, NEG)
    score = (start.masked_fill(~allowed_start, NEG) + emissions[:, 0])  # batch x labels
    history = []
    for t in range(1, emissions.size(1)):
        total = score.unsqueeze(2) + trans.unsqueeze(0) + emissions[:, t].unsqueeze(1)  # batch x prev x next
        best, idx = total.max(dim=1)
        keep = mask[:, t].unsqueeze(1)
        score = torch.where(keep, best, score)
        history.append(torch.where(keep, idx, torch.arange(score.size(1), device=idx.device).expand_as(idx)))
    score = score + end
    paths = []
    lengths = mask.sum(dim=1).tolist()
    for b in range(emissions.size(0)):
        tag = int(score[b].argmax())
        path = [tag]
        for t in range(int(lengths[b]) - 1, 0, -1):
            tag = int(history[t - 1][b, tag])
            path.append(tag)
        paths.append(path[::-1])
    return paths


class SoftmaxHead:
    """transformers' ``*ForTokenClassification``: a linear layer over every sub-token, trained by
    class-weighted cross-entropy (the schemes' weights), saved as transformers saves it (the folder
    loads in plain transformers)."""

    name = "softmax"

    @staticmethod
    def loss(model, inputs: dict, class_weights: torch.Tensor | None):
        """(``CrossEntropyLoss(weight=class_weights)`` over the labelled sub-tokens, the outputs)."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits.float()
        weight = None if class_weights is None else class_weights.to(logits.device)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), weight=weight, ignore_index=-100)
        return loss, outputs

    @staticmethod
    def inference_inputs(inputs: dict) -> dict:
        """Labels have no use at prediction (they would only cost an unweighted loss)."""
        return {k: v for k, v in inputs.items() if k != "labels"}

    @staticmethod
    def save(model, folder: Path) -> None:
        model.save_pretrained(folder)  # safetensors, config with the label names

    @staticmethod
    def load(folder: Path, labels: list[str]):
        return AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True)


class CRFTagger(nn.Module):
    """Encoder + dropout + linear emissions + CRF over first-sub-token positions."""

    name = "crf"

    def __init__(self, encoder: nn.Module, labels: list[str], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, len(labels))
        self.crf = CRF(len(labels), batch_first=True)
        allowed, allowed_start = iob2_allowed(labels)
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("allowed_start", allowed_start, persistent=False)

    @classmethod
    def from_encoder(cls, name_or_path: str | None, labels: list[str], config=None, **kwargs) -> "CRFTagger":
        encoder = AutoModel.from_config(config) if name_or_path is None else AutoModel.from_pretrained(name_or_path, **kwargs)
        return cls(encoder, labels)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def resize_token_embeddings(self, n: int):
        return self.encoder.resize_token_embeddings(n)

    # What differs from the softmax head (called as ``head_of(model).loss(model, ...)``, like
    # SoftmaxHead's static methods).

    def loss(self, inputs: dict, class_weights: torch.Tensor | None):
        """The negative log-likelihood of the gold path, computed by ``forward``; class weights are
        defined for the softmax head only (a run refuses a weighted scheme with the CRF head)."""
        assert class_weights is None, "the CRF head takes no class weights"
        outputs = self(**inputs)
        return outputs.loss, outputs

    @staticmethod
    def inference_inputs(inputs: dict) -> dict:
        """Labels stay: they mark the word starts the CRF path runs over."""
        return inputs

    def save(self, folder: Path) -> None:
        """Our own module, not a transformers class: one state dict (encoder + emissions +
        transitions) as safetensors, and the encoder's config."""
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(folder) / "model.safetensors"))
        self.config.save_pretrained(folder)

    @classmethod
    def load(cls, folder: Path, labels: list[str]) -> "CRFTagger":
        model = cls(AutoModel.from_config(AutoConfig.from_pretrained(folder)), labels)
        model.load_state_dict(load_file(Path(folder) / "model.safetensors"))
        return model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """``labels`` mark the word starts (every word's first sub-token carries its label, the
        rest -100); for prediction without gold labels pass any label id at the word starts."""
        if labels is None:
            raise ValueError("CRFTagger needs labels: they mark the word starts (any label id there, -100 elsewhere)")
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        scores = self.classifier(self.dropout(hidden)).float()
        starts = labels != -100
        # words left-aligned: batch x max words
        n_words = starts.sum(dim=1)
        width = max(int(n_words.max()), 1)
        order = torch.argsort((~starts).int(), dim=1, stable=True)[:, :width]
        word_mask = torch.arange(width, device=scores.device).unsqueeze(0) < n_words.unsqueeze(1)
        emissions = scores.gather(1, order.unsqueeze(2).expand(-1, -1, scores.size(2)))
        tags = labels.gather(1, order).clamp(min=0)
        loss = -self.crf(emissions, tags, mask=word_mask, reduction="mean")
        logits = torch.zeros_like(scores)
        if not self.training:  # decoded path as one-hot scores at the word starts (argmax = the path)
            paths = viterbi(emissions, word_mask, self.crf.start_transitions, self.crf.transitions,
                            self.crf.end_transitions, self.allowed, self.allowed_start)
            for b, path in enumerate(paths):
                logits[b, order[b, : len(path)], torch.tensor(path, device=scores.device)] = 1.0
        return TokenClassifierOutput(loss=loss, logits=logits)


class MultiTaskTagger(nn.Module):
    """The multi-task head (``dataset.merge=mtl``, AIONER's MTL baseline): a shared encoder and one
    output layer per member corpus, each trained on its own member's sentences only.

    The member layers are the row blocks of one token-classification layer over every member's
    labels (``<tag>@<member>``, ``corpus.in_member``): the rows of member m are its layer (W_m, b_m), shared
    with no other member, and a word of a member-m sentence is scored over that block alone,

        p(y | x, m) = softmax_{y in L_m}(W_m h + b_m),
        loss = sum_m  mean over the batch's words of member m of  -log p(y_gold | x, m)   (MTL: summed over tasks).

    A word's member is the block its label id lies in: a member's sentences carry labels of its
    own block only (gold ones in training and scoring, ``O@<member>`` for new text, ``aio.MultiTask.wrap``),
    so the labels choose the layer, never the gold tag within it. Outside its block a word's scores
    are ``NEG``: the argmax stays in the member's layer. The inner model is transformers' own and
    its saved folder loads in plain transformers (as one layer over all blocks)."""

    name = "mtl"

    def __init__(self, inner: nn.Module, labels: list[str]):
        super().__init__()
        self.inner = inner
        self.config = inner.config
        members = list(dict.fromkeys(member_of(label) for label in labels))
        self.members = members
        self.register_buffer("block", torch.tensor([members.index(member_of(label)) for label in labels]),
                             persistent=False)

    @property
    def base_model(self):  # the shared encoder (modeling.build_from_saved starts a new model from it)
        return self.inner.base_model

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def resize_token_embeddings(self, n: int):
        return self.inner.resize_token_embeddings(n)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """Each labelled position's scores kept in its member's block (``NEG`` elsewhere); positions
        without a label (-100: special tokens, later sub-tokens) are not read by anyone."""
        if labels is None:
            raise ValueError("MultiTaskTagger needs labels: their block names each word's member layer")
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        logits = self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits.float()
        member = self.block[labels.clamp(min=0)]  # batch x positions
        outside = (self.block.view(1, 1, -1) != member.unsqueeze(-1)) & (labels != -100).unsqueeze(-1)
        return TokenClassifierOutput(logits=logits.masked_fill(outside, NEG))

    def loss(self, inputs: dict, class_weights: torch.Tensor | None):
        """The sum over the batch's members of each member's (class-weighted) mean cross-entropy."""
        outputs = self(**inputs)
        labels = inputs["labels"]
        logits = outputs.logits
        weight = None if class_weights is None else class_weights.to(logits.device)
        member = self.block[labels.clamp(min=0)].masked_fill(labels == -100, -1)
        loss = logits.new_zeros(())
        for m in member.unique().tolist():
            if m < 0:
                continue
            at = member == m
            loss = loss + F.cross_entropy(logits[at], labels[at], weight=weight)
        outputs.loss = loss
        return loss, outputs

    @staticmethod
    def inference_inputs(inputs: dict) -> dict:
        """Labels stay: they name each sentence's member layer."""
        return inputs

    def save(self, folder: Path) -> None:
        self.inner.save_pretrained(folder)  # safetensors, config with the <tag>@<member> label names

    @classmethod
    def load(cls, folder: Path, labels: list[str]) -> "MultiTaskTagger":
        return cls(AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True), labels)


HEADS = {"softmax": SoftmaxHead, "crf": CRFTagger}  # model.head
WRAPPERS = {"mtl": MultiTaskTagger}  # a corpus's own head around the built model (``corpus.Adapter.head``)
SAVED_HEADS = {**HEADS, **WRAPPERS}  # a saved model's head (bundle META "head")


def wrap(model, labels: list[str], head: str | None):
    """The built model in the head its corpus trains (``corpus.Adapter.head``; None: as it is)."""
    return model if head is None else WRAPPERS[head](model, labels)


def head_named(name: str):
    """The head of ``model.head``."""
    if name not in HEADS:
        raise ValueError(f"model.head must be one of {', '.join(HEADS)}, got {name!r}")
    return HEADS[name]


def head_of(model):
    """The head a built or loaded model has."""
    return type(model) if isinstance(model, (CRFTagger, MultiTaskTagger)) else SoftmaxHead
