"""The model's own chat template, rendered the same way on the edge and in the cloud.

Rendering goes through llama-cpp-python's Jinja2 formatter (a sandboxed environment
with the extensions and filters Hugging Face templates use). A GGUF without a template
gets ChatML, llama.cpp's own default. The rendered text is the whole prompt: it starts
with the BOS text when the model wants a BOS the template did not write, so that
tokenizing it with special tokens parsed and no BOS added gives the prompt's ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from llama_runtime.control_text import ControlTextFilter
from llama_runtime.vocab import control_token_texts, token_text

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ChatTemplate:
    def __init__(
        self,
        source: str | None,
        *,
        bos_text: str,
        eos_text: str,
        add_bos: bool,
        control_texts: Iterable[str] = (),
    ) -> None:
        source = source or CHATML
        self._formatters = {
            flag: Jinja2ChatFormatter(
                template=source,
                bos_token=bos_text,
                eos_token=eos_text,
                add_generation_prompt=flag,
            )
            for flag in (True, False)
        }
        self._bos_text = bos_text if add_bos else ""
        self._control_text = ControlTextFilter(control_texts)

    @classmethod
    def of_model(cls, llm: Llama) -> ChatTemplate:
        return cls(
            llm.metadata.get("tokenizer.chat_template"),
            bos_text=token_text(llm, llm.token_bos()),
            eos_text=token_text(llm, llm.token_eos()),
            add_bos=bool(llm._model.add_bos_token()),
            control_texts=control_token_texts(llm),
        )

    def render(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text for `messages`, ready for the answer when asked.

        Control-token text is removed from each message's content first: the text is
        tokenized with special tokens parsed, and content must not open or end a turn.
        """
        formatter = self._formatters[add_generation_prompt]
        text = formatter(messages=self._control_text.clean(messages)).prompt
        if self._bos_text and not text.startswith(self._bos_text):
            text = self._bos_text + text
        return text
