"""The classroom lesson path (no Streamlit): a guided sequence of steps through the labs.

Each step names the page to open (a file under ``app_pages/``; its URL path is the file stem),
URL parameters that prepare the experiment where that page reads them (``kdviz.ui.urlstate``),
what to do there, and two or three sentences to say. ``app_pages/lesson.py`` shows one step at a
time; the step number lives in the URL (``?step=3``) so a lesson can be resumed or handed out.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LessonStep:
    title: str
    page: str  # file under app_pages/
    do: str  # what to do on that page (markdown)
    say: str  # two or three sentences for the class (markdown)
    params: dict[str, str] = field(default_factory=dict)  # URL parameters the page understands


STEPS = (
    LessonStep("Soft targets", "temperature.py",
               "Pick a digit, then drag **Temperature T** from 1 to 8 with the log scale on.",
               "A trained network is almost certain of its answer, but the tiny probabilities it gives the wrong "
               "classes say which digits look alike. Dividing the logits by a temperature T makes those ratios "
               "visible: that is the 'dark knowledge' a student can learn from.",
               {"T": "8.0", "log": "true"}),
    LessonStep("The teacher", "teacher.py",
               "Press **Start** to train a big MLP for a few seconds, or keep the shipped teacher.",
               "The teacher is a large network trained the ordinary way, on hard labels. Everything the student "
               "will learn comes from its outputs, so a better teacher usually means a better student."),
    LessonStep("Distilled vs scratch", "distill.py",
               "Press **Start**: two identical students (MLP 784-16-10, half the teacher's size) train side by side, "
               "one on the teacher's soft targets (T = 4, alpha = 0.9), one on the 1,000 labels only.",
               "Same architecture, same start, same images: the only difference is what they learn from. With only "
               "1,000 labels the teacher labels the rest of the images for the distilled student, and it ends "
               "clearly higher; with every label and a larger student the two end within noise of each other.",
               {"arch": "mlp", "hidden": "16", "transfer": "labelled", "transfer_n": "1000", "epochs": "2.0", "T": "4.0", "alpha": "0.9"}),
    LessonStep("The digit never seen", "experiments.py",
               "Choose the scenario **The digit the student never saw** and press **Run**.",
               "The student's training set has no 3 at all, yet it still recognises most 3s: it learned what a 3 is "
               "from how the teacher's outputs for other digits leaned toward 3 (Hinton et al. 2015).",
               {"kind": "omitted-digit", "omit": "3", "seeds": "3"}),
    LessonStep("Comparing methods", "distill.py",
               "Add an **Extra distillation term** (e.g. DKD or RKD) and start again; compare with plain KD.",
               "Logit distillation is only one option: feature and relation methods match what happens inside the "
               "networks. Compare them with several seeds before believing a difference of a few tenths of a percent.",
               {"transfer": "labelled", "transfer_n": "1000", "hidden": "16"}),
    LessonStep("Where the networks look", "feature_maps.py",
               "Press **Train the student**, pick a digit and compare the teacher's and the student's attention maps "
               "stage by stage; then press **Run a short AT training** and watch the student's map move toward the "
               "teacher's.",
               "Attention transfer (Zagoruyko & Komodakis 2017) distils from inside the network: it asks the "
               "student's convolution stages to put their energy where the teacher's do. The curve under the maps "
               "is the distance between the two, shrinking as the student trains."),
    LessonStep("The language-model trap", "lm.py",
               "Compare the loss on padded token batches with and without the mask.",
               "For language models the same KL runs at every token of a [B, S, V] batch. Forget to mask the padding "
               "and average by the batch size, and the loss grows with the padding length: the model is "
               "distilled on tokens that do not exist."),
)


def step_count() -> int:
    return len(STEPS)


def get_step(number: int) -> LessonStep:
    """Step ``number`` counted from 1; ValueError naming the number otherwise."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(STEPS):
        raise ValueError(f"lesson step must be a whole number from 1 to {len(STEPS)}, got {number!r}")
    return STEPS[number - 1]
